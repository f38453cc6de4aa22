//! The worker thread: the one place that owns libtorch state (models, VarStores, tensors are not
//! Sync). The GUI and the CLI send it [`Command`]s and drain [`Message`]s; a libtorch error or
//! panic becomes a [`Message::Error`], never a crash of the app.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use crate::project::guard::catch;
use crate::project::model_file::{ModelFile, TrainConfig};
use crate::project::results::InferenceSummary;
use crate::project::training::{BUILTIN_BACKBONES, DEFAULT_BACKBONE, Progress};
use crate::stats::acontrario::{OutlineRule, SegmentOptions, TestCount};
use crate::uflow::backbone;
use crate::uflow::model::Model;
use crate::uflow::runtime::{self, TorchInfo};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub enum Command {
    /// Report the libtorch version and the compute device.
    Probe,
    /// Compute on the CPU even when a GPU is usable (or on the GPU again); answers with the
    /// device now in use. Models loaded for the other device are let go.
    UseDevice { cpu_only: bool },
    /// Locate and load the built-in backbones' weights (the default one, or `all`), reporting
    /// where each is and how many tensors it holds.
    CheckBackbone { all: bool },
    /// Train a U-Flow on normal images and save it to `out` (progress as it goes).
    Train {
        images: Vec<PathBuf>,
        config: TrainConfig,
        out: PathBuf,
    },
    /// Run a saved model on images (id, path); results are cached in `cache` when given. `tag`
    /// comes back with each result (the window's project generation). `count` and `outline`
    /// override the model's segmentation (to compare them on one model).
    /// A command that panics, for the test that the worker survives one.
    #[cfg(test)]
    Panic,
    Infer {
        tag: u64,
        model: PathBuf,
        images: Vec<(String, PathBuf)>,
        cache: Option<PathBuf>,
        count: Option<TestCount>,
        outline: Option<OutlineRule>,
    },
}

/// A built-in backbone looked for: its name, and its weight file with its count of tensors, or
/// why it cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneCheck {
    pub name: String,
    pub package: String,
    pub found: Result<(PathBuf, usize), String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Torch(TorchInfo),
    /// The built-in backbones checked, the default first.
    Backbones(Vec<BackboneCheck>),
    Progress(Progress),
    Trained {
        dir: PathBuf,
        file: Box<ModelFile>,
        seconds: f64,
    },
    Inferred {
        tag: u64,
        id: String,
        result: Box<InferenceSummary>,
        /// Read from the cache rather than computed.
        cached: bool,
        /// How long it took on the worker (reading it back, when cached).
        seconds: f64,
    },
    /// A multi-message command finished (successfully or not).
    Finished,
    Error {
        context: String,
        message: String,
    },
    /// A command stopped by [`Worker::cancel`] (a training leaves its checkpoint behind).
    Cancelled {
        context: String,
    },
}

/// Wakes the receiver (the GUI's `request_repaint`) after each message.
pub type Notify = Box<dyn Fn() + Send>;

pub struct Worker {
    cancel: Arc<AtomicBool>,
    tx: Option<Sender<Command>>,
    rx: Receiver<Message>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn spawn(notify: Notify) -> Self {
        let (tx, cmd_rx) = mpsc::channel::<Command>();
        let (msg_tx, rx) = mpsc::channel::<Message>();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let handle = std::thread::Builder::new()
            .name("contrario-worker".into())
            .spawn(move || {
                let mut models: HashMap<PathBuf, Model> = HashMap::new();
                let mut cpu_only = false;
                let emit = |m: Message| {
                    let ok = msg_tx.send(m).is_ok();
                    notify();
                    ok
                };
                for cmd in cmd_rx {
                    flag.store(false, Ordering::Relaxed);
                    let outcome = catch(|| run(&cmd, &mut models, &mut cpu_only, &flag, &emit));
                    let last = match outcome {
                        Ok(Some(m)) => m,
                        Ok(None) => continue,
                        Err(message) => Message::Error {
                            context: cmd.context(),
                            message,
                        },
                    };
                    if !emit(last) {
                        break;
                    }
                }
            })
            .expect("spawning the worker thread");
        Self {
            cancel,
            tx: Some(tx),
            rx,
            handle: Some(handle),
        }
    }

    pub fn send(&self, cmd: Command) {
        if let Some(tx) = &self.tx {
            // A closed channel means the worker is gone; the caller sees no reply, not a panic.
            let _ = tx.send(cmd);
        }
    }

    /// Ask the running command to stop (training stops within a batch, inference between images).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Next pending message, if any (never blocks).
    pub fn try_recv(&self) -> Option<Message> {
        self.rx.try_recv().ok()
    }

    /// Block until the next message (CLI use).
    pub fn recv(&self) -> Option<Message> {
        self.rx.recv().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Command {
    fn context(&self) -> String {
        match self {
            Command::Probe | Command::UseDevice { .. } => "libtorch".into(),
            Command::CheckBackbone { .. } => "built-in backbone".into(),
            Command::Train { out, .. } => format!("training {}", out.display()),
            Command::Infer { model, .. } => format!("inference with {}", model.display()),
            #[cfg(test)]
            Command::Panic => "test".into(),
        }
    }
}

/// Run one command; intermediate messages go through `emit`, the last one is returned.
fn run(
    cmd: &Command,
    models: &mut HashMap<PathBuf, Model>,
    cpu_only: &mut bool,
    cancel: &AtomicBool,
    emit: &dyn Fn(Message) -> bool,
) -> Option<Message> {
    let error = |e: anyhow::Error| {
        if e.is::<crate::uflow::model::Cancelled>() {
            Message::Cancelled {
                context: cmd.context(),
            }
        } else {
            Message::Error {
                context: cmd.context(),
                message: format!("{e:#}"),
            }
        }
    };
    Some(match cmd {
        #[cfg(test)]
        Command::Panic => panic!("injected fault"),
        Command::Probe => Message::Torch(runtime::probe_with(*cpu_only)),
        Command::UseDevice { cpu_only: c } => {
            if *c != *cpu_only {
                models.clear();
                *cpu_only = *c;
            }
            Message::Torch(runtime::probe_with(*cpu_only))
        }
        Command::CheckBackbone { all } => {
            let check = |b: &crate::project::training::BuiltinBackbone| BackboneCheck {
                name: b.name.to_string(),
                package: b.package.to_string(),
                found: backbone::weights_path(b)
                    .and_then(|path| backbone::load_state_dict(&path).map(|t| (path, t.len())))
                    .map_err(|e| e.to_string()),
            };
            let default = crate::project::training::parse_builtin(DEFAULT_BACKBONE)
                .map_or(&BUILTIN_BACKBONES[0], |(b, _)| b);
            let mut checks = vec![check(default)];
            if *all {
                checks.extend(
                    BUILTIN_BACKBONES
                        .iter()
                        .filter(|b| b.name != default.name)
                        .map(check),
                );
            }
            Message::Backbones(checks)
        }
        Command::Train {
            images,
            config,
            out,
        } => {
            let start = std::time::Instant::now();
            let device = runtime::probe_with(*cpu_only).tch_device();
            // Checkpoints go next to the model: a cancelled or crashed training started again
            // with the same images and settings resumes where it stopped.
            let trained = Model::train_resumable(
                images,
                config,
                device,
                cancel,
                |p| {
                    emit(Message::Progress(p));
                },
                Some(out),
            )
            .and_then(|m| m.save(out).map(|_| m));
            match trained {
                Ok(m) => {
                    let msg = Message::Trained {
                        dir: out.clone(),
                        file: Box::new(m.file.clone()),
                        seconds: start.elapsed().as_secs_f64(),
                    };
                    models.insert(out.clone(), m);
                    msg
                }
                Err(e) => error(e),
            }
        }
        Command::Infer {
            tag,
            model,
            images,
            cache,
            count,
            outline,
        } => {
            if !models.contains_key(model) {
                match Model::load(model, runtime::probe_with(*cpu_only).tch_device()) {
                    Ok(m) => {
                        models.insert(model.clone(), m);
                    }
                    Err(e) => return Some(error(e)),
                }
            }
            let m = &models[model];
            let opts = (count.is_some() || outline.is_some()).then(|| SegmentOptions {
                outline: outline.unwrap_or_default(),
                ..SegmentOptions::with_count(count.unwrap_or(m.file.train.test_count))
            });
            for (id, path) in images {
                if cancel.load(Ordering::Relaxed) {
                    return Some(Message::Cancelled {
                        context: cmd.context(),
                    });
                }
                let start = std::time::Instant::now();
                let msg = match m.infer_cached(model, id, path, cache.as_deref(), opts) {
                    Ok((result, cached)) => Message::Inferred {
                        tag: *tag,
                        id: id.clone(),
                        result: Box::new(result),
                        cached,
                        seconds: start.elapsed().as_secs_f64(),
                    },
                    Err(e) => Message::Error {
                        context: format!("{}: {id}", cmd.context()),
                        message: format!("{e:#}"),
                    },
                };
                if !emit(msg) {
                    return None;
                }
            }
            Message::Finished
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_answers_probe_and_backbone_check() {
        let w = Worker::spawn(Box::new(|| {}));
        w.send(Command::Probe);
        w.send(Command::CheckBackbone { all: true });
        match w.recv().unwrap() {
            Message::Torch(info) => assert!(info.libtorch_version.starts_with("2.13")),
            m => panic!("unexpected {m:?}"),
        }
        match w.recv().unwrap() {
            Message::Backbones(found) => {
                let names: Vec<&str> = found.iter().map(|b| b.name.as_str()).collect();
                assert_eq!(
                    names,
                    [
                        "efficientnet-lite2",
                        "efficientnet-lite0",
                        "efficientnet-lite1"
                    ],
                    "the default first, then the others"
                );
                let tensors: Vec<usize> = found
                    .iter()
                    .map(|b| b.found.as_ref().expect("setup installs all three").1)
                    .collect();
                assert_eq!(
                    tensors,
                    [
                        backbone::EFFNET_LITE12_TENSORS,
                        backbone::EFFNET_LITE0_TENSORS,
                        backbone::EFFNET_LITE12_TENSORS
                    ]
                );
            }
            m => panic!("unexpected {m:?}"),
        }
        // Forced onto the CPU, it says so (and says the GPU again where there is one).
        w.send(Command::UseDevice { cpu_only: true });
        match w.recv().unwrap() {
            Message::Torch(info) => {
                assert_eq!(info.device, "cpu");
                assert!(info.summary().starts_with("CPU"), "{}", info.summary());
            }
            m => panic!("unexpected {m:?}"),
        }
        w.send(Command::UseDevice { cpu_only: false });
        match w.recv().unwrap() {
            Message::Torch(info) => assert_eq!(info.on_gpu(), info.cuda_devices > 0),
            m => panic!("unexpected {m:?}"),
        }
    }

    #[test]
    fn a_panicking_command_becomes_an_error_message_and_the_worker_goes_on() {
        let w = Worker::spawn(Box::new(|| {}));
        w.send(Command::Panic);
        w.send(Command::Probe);
        assert_eq!(
            w.recv(),
            Some(Message::Error {
                context: "test".into(),
                message: "injected fault".into()
            })
        );
        assert!(matches!(w.recv(), Some(Message::Torch(_))));
    }
}
