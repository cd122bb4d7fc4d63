fn main() -> std::process::ExitCode {
    codats::alloc::keep_freed_memory();
    quiet_on_closed_output();
    let cli = codats::cli::parse();
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

/// Output closed or full, as Unix tools behave: a closed pipe (`codats … | head -1`) ends the
/// process quietly through the default SIGPIPE action (Rust ignores SIGPIPE and print! would
/// panic); a stdout that cannot be written (`>/dev/full`) is a one-line error and exit 1, not a
/// panic with exit 101.
fn quiet_on_closed_output() {
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(rest) = msg.strip_prefix("failed printing to stdout: ") {
            eprintln!("error: writing to standard output: {rest}");
            std::process::exit(1);
        }
        default(info);
    }));
}
