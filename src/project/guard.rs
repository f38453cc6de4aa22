//! Panics turned into messages. Every thread and background job of the app (the worker, the
//! autosaver, rayon jobs, file dialogs) runs its work through [`catch`]: a bug in one job
//! becomes an error the user reads, never the end of the process or of a thread that later work
//! depends on.

/// `job()`, or the message of its panic.
pub fn catch<T>(job: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).map_err(|p| panic_text(&p))
}

/// The message of a panic payload.
pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown error".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(super::catch(|| 3), Ok(3));
        assert_eq!(
            super::catch(|| -> u8 { panic!("boom {}", 7) }),
            Err("boom 7".to_string())
        );
        let r: Result<(), String> = super::catch(|| std::panic::panic_any(42u8));
        assert_eq!(r, Err("unknown error".into()));
    }
}
