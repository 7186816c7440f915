//! `tcptrace`: parse the command line, load and attach the kernel programs, print events.
//! Exit codes: 0 success (and a closed stdout pipe), 1 run-time failure, 2 usage error.

/// `eprintln!` that never panics: with stderr gone (`tcptrace -v 2>&1 | head -1`, a full
/// disk) there is nowhere left to say anything, and the trace goes on regardless.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _unsaid = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;
mod config;
mod decode;
mod drops;
mod end;
mod event;
mod filter;
mod grown;
mod join;
mod loader;
mod printer;
mod privileges;
mod resets;
mod run;
mod serve;
mod session;
mod source;
mod summary;
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
            say!("tcptrace: {} (see --help)", one_line_usage_error(&err.to_string()));
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
            say!(
                "tcptrace: {} {verb} not apply to `tcptrace {name}` (see --help)",
                ignored.join(", ")
            );
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
                say!("tcptrace: writing to stdout: {err}");
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
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            say!("tcptrace: {err:#}");
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
            // Into memory first: `generate` panics when it cannot write.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut definition, "tcptrace", &mut script);
            std::io::Write::write_all(&mut out, &script)
                .and_then(|()| std::io::Write::flush(&mut out))
        }
        cli::Command::Man => man_page(definition, &mut out),
        cli::Command::Top(_) | cli::Command::Serve(_) => Ok(()),
    }
}

/// The man page: clap_mangen's sections for the main command, then a section for each
/// subcommand with its own options (clap_mangen would only name a page per subcommand,
/// which nothing installs), and the examples as written (it re-fills them as prose).
fn man_page(mut definition: clap::Command, out: &mut impl std::io::Write) -> std::io::Result<()> {
    definition.build();
    let examples = definition.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    let main = clap_mangen::Man::new(
        definition.clone().after_help(None::<&str>).disable_help_subcommand(true),
    );
    main.render_title(out)?;
    main.render_name_section(out)?;
    main.render_synopsis_section(out)?;
    main.render_description_section(out)?;
    main.render_options_section(out)?;
    for sub in definition.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        // clap takes only 'static names here; this runs once, then the process exits.
        let title: &'static str = format!("tcptrace {}", sub.get_name()).leak();
        let heading: &'static str = format!("{} OPTIONS", title.to_uppercase()).leak();
        writeln!(out, ".SH \"{}\"", title.to_uppercase())?;
        for line in sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default()
            .lines()
        {
            writeln!(out, "{}", roff_line(line))?;
        }
        // Its own options only: the global ones are the main command's, above.
        let own: Vec<clap::Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_global_set() && !a.is_hide_set() && a.get_id() != "help")
            .map(|a| a.clone().help_heading(heading))
            .collect();
        if !own.is_empty() {
            let page =
                clap_mangen::Man::new(clap::Command::new(title).args(own).disable_help_flag(true));
            page.render_options_section(out)?;
        }
    }
    writeln!(out, ".SH EXAMPLES\n.nf")?;
    for line in examples.lines().skip_while(|l| !l.trim_start().starts_with("tcptrace")) {
        writeln!(out, "{}", roff_line(line))?;
    }
    writeln!(out, ".fi")
}

/// One line of text for roff: a backslash written as roff's `\e`, a hyphen as `\-` (a
/// minus sign, so options can be copied), and a leading `.` or `'` (a request to roff)
/// made literal.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// clap's message on one line: what is wrong, and the lines that say what would be right
/// (the arguments missing, the possible values, a tip), without the usage and the pointer
/// to --help that follow.
fn one_line_usage_error(text: &str) -> String {
    let words: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let line = words.join(" ");
    let line = line.trim_start_matches("error: ");
    if line.is_empty() {
        "invalid arguments".to_string()
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_errors_keep_what_would_be_right_on_one_line() {
        let missing = "error: the following required arguments were not provided:\n  <SHELL>\n\nUsage: tcptrace completions <SHELL>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::one_line_usage_error(missing),
            "the following required arguments were not provided: <SHELL>"
        );
        let value = "error: invalid value 'xml' for '--output <FORMAT>'\n  [possible values: table, plain, json, csv]\n\nFor more information, try '--help'.\n";
        assert_eq!(super::one_line_usage_error(value), "invalid value 'xml' for '--output <FORMAT>' [possible values: table, plain, json, csv]");
        assert_eq!(super::one_line_usage_error(""), "invalid arguments");
    }
}
