use clap::Parser;

fn main() -> std::process::ExitCode {
    codats::alloc::keep_freed_memory();
    let cli = codats::cli::Cli::parse();
    match codats::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}
