//! `contrario watch`: live inspection from the command line, one JSON line per image on stdout
//! (and in --out), verdicts to MQTT; runs until interrupted, or --stop-after images.

use std::path::PathBuf;

use crate::app::mqtt::Broker;
use crate::app::watch::{Watch, WatchConfig, WatchEvent};

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Project folder (its models score the images; they join it as the live split).
    #[arg(long)]
    pub project: PathBuf,
    /// Folder the line camera writes into (sub-folders too).
    #[arg(long)]
    pub folder: PathBuf,
    /// Model name; default: the project's detector, else its newest model.
    #[arg(long)]
    pub model: Option<String>,
    /// Category of every image; default: the project's only one, else each image's first
    /// sub-folder under --folder.
    #[arg(long)]
    pub category: Option<String>,
    /// Append each record to this JSON-lines file too.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Publish each record to a broker, mqtt://HOST:PORT (QoS 1).
    #[arg(long, requires = "topic")]
    pub mqtt: Option<Broker>,
    /// Topic prefix: records go to PREFIX/CATEGORY.
    #[arg(long, requires = "mqtt")]
    pub topic: Option<String>,
    /// Flag an image when a region's NFA is below this many false alarms per image (default:
    /// the project's level).
    #[arg(long)]
    pub level: Option<f64>,
    /// Stop after this many images (scored or not).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Keep the cached maps of only this many of the latest images with no region, drift or
    /// error (flagged ones keep theirs for review).
    #[arg(long, default_value_t = crate::app::watch::KEEP_UNFLAGGED)]
    pub keep_unflagged: usize,
}

pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let watch = Watch::start(
        WatchConfig {
            project: args.project,
            folder: args.folder,
            model: args.model,
            category: args.category,
            level: args.level,
            out: args.out,
            mqtt: args.mqtt.zip(args.topic),
            stop_after: args.stop_after,
            keep_unflagged: args.keep_unflagged,
        },
        Box::new(|| {}),
    )?;
    while let Some(e) = watch.recv() {
        match e {
            WatchEvent::Started {
                model,
                folder,
                earlier,
            } => eprintln!(
                "watching {} with model {model:?} ({earlier} image(s) of earlier runs not scored again)",
                folder.display()
            ),
            WatchEvent::Record(r) => {
                if let Some(err) = &r.error {
                    eprintln!("{}: {err}", r.file.display());
                }
                println!("{}", serde_json::to_string(&r)?);
            }
            WatchEvent::Warning(w) => eprintln!("warning: {w}"),
            WatchEvent::Stopped {
                counts,
                mqtt_unsent,
            } => {
                eprintln!(
                    "stopped: {} seen, {} flagged, {} error(s){}",
                    counts.seen,
                    counts.flagged,
                    counts.errors,
                    if mqtt_unsent > 0 {
                        format!(
                            "; {mqtt_unsent} message(s) the broker never acknowledged, kept for the next watch with a broker"
                        )
                    } else {
                        String::new()
                    }
                );
                break;
            }
        }
    }
    Ok(())
}
