//! `tcptrace`: parse the command line, load and attach the kernel programs, print events.
//! Exit codes: 0 success (and a closed stdout pipe), 1 run-time failure, 2 usage error.

mod cli;
mod decode;
mod event;
mod filter;
mod loader;
mod printer;
mod privileges;
mod run;
mod serve;
mod source;
mod top;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _printed = err.print();
                return ExitCode::SUCCESS;
            }
            // clap's message spans several lines (tips, usage): keep the first, one line.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("tcptrace: {} (see --help)", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let subcommand = match &cli.command {
        Some(cli::Command::Top(_)) => Some("top"),
        Some(cli::Command::Serve(_)) => Some("serve"),
        _ => None,
    };
    if let Some(name) = subcommand {
        let ignored = cli.trace_only_options();
        if !ignored.is_empty() {
            let verb = if ignored.len() == 1 { "does" } else { "do" };
            eprintln!("tcptrace: {} {verb} not apply to `tcptrace {name}` (see --help)", ignored.join(", "));
            return ExitCode::from(2);
        }
    }
    match &cli.command {
        Some(cli::Command::Top(args)) => return exit_code(top::run(&cli, args)),
        Some(cli::Command::Serve(args)) => return exit_code(serve::run(&cli, args)),
        _ => {}
    }
    if let Some(command) = &cli.command {
        return match print_generated(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("tcptrace: {err}");
                ExitCode::from(1)
            }
        };
    }
    exit_code(run::run(&cli))
}

/// One line on stderr for a failure; 2 for the user's mistake, 1 for anything else.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`tcptrace | head`, `--list-probes | head -1`): a normal end.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tcptrace: {err:#}");
            ExitCode::from(if err.downcast_ref::<filter::UsageError>().is_some() { 2 } else { 1 })
        }
    }
}

/// `completions` and `man`: text generated from the clap definition, so it cannot drift.
fn print_generated(command: &cli::Command) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut out = std::io::stdout().lock();
    let mut definition = cli::Cli::command();
    match command {
        cli::Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut definition, "tcptrace", &mut out);
            Ok(())
        }
        cli::Command::Man => clap_mangen::Man::new(definition).render(&mut out),
        cli::Command::Top(_) | cli::Command::Serve(_) => Ok(()),
    }
}
