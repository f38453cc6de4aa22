//! Contrario: review industrial visual anomalies and correct their labels.
//!
//! Everything testable without a window lives in this library; `gui` is a thin egui layer over
//! [`app::AppState`], and `main.rs` only parses the command line.

pub mod acontrario;
pub mod app;
pub mod autosave;
pub mod backbone;
pub mod bench;
pub mod cli;
pub mod dataset;
pub mod demo;
pub mod export;
pub mod flow;
pub mod gui;
pub mod imaging;
pub mod import;
pub mod labels;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod project;
pub mod project_cmd;
pub mod review;
pub mod runtime;
pub mod segment_cmd;
pub mod storage;
pub mod torch_pickle;
pub mod trainfree_cmd;
pub mod uflow_cmd;
pub mod worker;
