//! U-Flow: the only layer that names libtorch. Frozen backbones (the built-in EfficientNet-Lite0
//! from PyTorch's legacy pickle format, or TorchScript), the U-shaped normalizing flow, the model
//! (training, calibration, files, inference), the compute device, and the worker thread that owns
//! all of it: the window and the command line reach libtorch only through its messages.

pub mod backbone;
pub mod bench;
pub mod flow;
pub mod model;
pub mod patchcore;
pub mod runtime;
pub mod torch_pickle;
pub mod worker;
