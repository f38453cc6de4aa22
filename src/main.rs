use clap::Parser;

fn main() {
    let cli = contrario::cli::Cli::parse();
    // Rust ignores SIGPIPE, so printing into a closed pipe (`contrario infer ... | head`) made
    // println! panic with a backtrace; with the default action the process ends quietly, as
    // every Unix tool does (where `Cli::ends_on_closed_pipe` says it may).
    #[cfg(unix)]
    if cli.ends_on_closed_pipe() {
        // SAFETY: before any other thread exists; SIG_DFL is a valid action.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    std::process::exit(contrario::cli::main_with(cli));
}
