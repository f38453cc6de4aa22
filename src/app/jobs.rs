//! How the app runs work off the UI thread: every background job goes through these, so that a
//! panic becomes an error the window can show instead of aborting the process.

use std::sync::Arc;

use crate::project::guard::catch;

/// Wakes the window when a result arrives (`egui::Context::request_repaint`).
pub type Repaint = Arc<dyn Fn() + Send + Sync>;

/// Run `job` on rayon's pool and hand its result, or the text of its panic, to `deliver`. Every
/// background job of the app goes through here: a panic must not abort the process.
pub fn spawn_caught<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
    deliver: impl FnOnce(Result<T, String>) + Send + 'static,
) {
    rayon::spawn(move || deliver(catch(job)));
}

/// Run `job` on a thread of its own (for work that blocks, such as a file dialog) and hand its
/// result, or the text of its panic, to `deliver`.
pub fn spawn_thread_caught<T: 'static>(
    job: impl FnOnce() -> T + Send + 'static,
    deliver: impl FnOnce(Result<T, String>) + Send + 'static,
) {
    std::thread::spawn(move || deliver(catch(job)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::mpsc;

    #[test]
    fn a_crashing_thread_job_reports_its_panic() {
        let (tx, rx) = mpsc::channel();
        spawn_thread_caught(
            || -> Option<PathBuf> { panic!("no portal") },
            move |r| {
                let _ = tx.send(r);
            },
        );
        let got = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(got, Err("no portal".to_string()));
    }
}
