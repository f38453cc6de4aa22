use clap::Parser;

fn main() {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`contrario infer ... | head`) made
    // println! panic with a backtrace; with the default action the process ends quietly, as
    // every Unix tool does.
    #[cfg(unix)]
    // SAFETY: called first, before any other thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = contrario::cli::Cli::parse();
    std::process::exit(contrario::cli::main_with(cli));
}
