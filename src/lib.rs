//! Contrario: review industrial visual anomalies and correct their labels.
//!
//! The library holds everything testable without a window, in layers; each uses only the ones
//! above it in this list (`tests/architecture.rs` checks it):
//! - [`stats`]: the a contrario engine, the training-free detector, metrics, `.npy` (pure Rust);
//! - [`project`]: the project folder and its files, labels and their edits, review, imports and
//!   exports, cached results (no libtorch);
//! - [`uflow`]: backbones, the flow, training and inference, and the worker thread that owns every
//!   libtorch object (the only layer that names `tch`);
//! - [`app`]: the window's state and commands, and background decoding (no egui);
//! - [`gui`]: the egui window, a thin layer that draws [`app::AppState`] and sends commands;
//! - [`cli`]: the command line (it starts the window; nothing imports it).

pub mod stats;

pub mod project;

pub mod uflow;

pub mod app;

pub mod gui;

pub mod cli;
