//! Smoke test of the real binary in a real window: start Xvfb, run `contrario` (it opens the demo
//! project), capture the screen with ImageMagick's `import`, and check the window is not blank.
//! `scripts/setup.sh` installs Xvfb and ImageMagick.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_display() -> u32 {
    (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("no free X display number")
}

/// Distinct colours and brightness spread: a blank or single-colour screen has almost none.
fn richness(img: &image::RgbImage) -> (usize, f64) {
    let mut colours = std::collections::HashSet::new();
    let (mut sum, mut sum2, n) = (0.0, 0.0, (img.width() * img.height()) as f64);
    for p in img.pixels() {
        colours.insert(p.0);
        let l = (p.0[0] as f64 + p.0[1] as f64 + p.0[2] as f64) / 3.0;
        sum += l;
        sum2 += l * l;
    }
    let mean = sum / n;
    (colours.len(), (sum2 / n - mean * mean).max(0.0).sqrt())
}

#[test]
fn real_binary_shows_a_non_blank_window_under_xvfb() {
    for tool in ["Xvfb", "import"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "{tool} is missing: run scripts/setup.sh (make setup)"
        );
    }
    let display = free_display();
    let _xvfb = KillOnDrop(
        Command::new("Xvfb")
            .args([
                format!(":{display}").as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting Xvfb"),
    );
    let socket = format!("/tmp/.X11-unix/X{display}");
    let start = Instant::now();
    while !Path::new(&socket).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "Xvfb did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let log = std::fs::File::create(out_dir.join("smoke-app.log")).unwrap();
    let mut app = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_contrario"))
            .env("DISPLAY", format!(":{display}"))
            .env_remove("WAYLAND_DISPLAY")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting contrario"),
    );
    let shot = out_dir.join("smoke-window.png");
    let start = Instant::now();
    let mut last = (0, 0.0);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(status) = app.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(out_dir.join("smoke-app.log")).unwrap_or_default();
            panic!("contrario exited early with {status}:\n{log}");
        }
        let ok = Command::new("import")
            .args(["-display", &format!(":{display}"), "-window", "root"])
            .arg(&shot)
            .status()
            .is_ok_and(|s| s.success());
        if ok && let Ok(img) = image::open(&shot) {
            last = richness(&img.to_rgb8());
            // A blank or cleared window has a handful of colours; the demo's texture, thumbnails
            // and antialiased text give over a thousand once drawn.
            if last.0 > 500 && last.1 > 10.0 {
                return;
            }
        }
        if start.elapsed() > Duration::from_secs(90) {
            let log = std::fs::read_to_string(out_dir.join("smoke-app.log")).unwrap_or_default();
            panic!("window still blank after 90 s (colours, spread: {last:?}); app log:\n{log}");
        }
    }
}
