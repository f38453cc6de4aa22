use clap::Parser;

fn main() {
    let cli = contrario::cli::Cli::parse();
    std::process::exit(contrario::cli::main_with(cli));
}
