use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = flightdeck::cli::Cli::parse();
    eprintln!("{:?}: wiring in progress", cli.command);
    std::process::ExitCode::from(2)
}
