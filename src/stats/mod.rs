//! Statistics, pure Rust: the a contrario engine and the training-free detector, evaluation
//! metrics, and the `.npy` format used to exchange maps with other implementations.

pub mod acontrario;
pub mod metrics;
pub mod npy;
pub mod timing;
