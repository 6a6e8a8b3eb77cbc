//! `confo`: the command-line tool. It parses, calls the library, prints; nothing else.
//!
//! Exit codes: 0 ok, 1 other failure, 2 usage (bad arguments, names, JSON, spec or profile), 3
//! not found, 4 conflict, 5 unavailable or unauthorized. Data goes to stdout, messages to
//! stderr.

/// `println!` that never panics on a closed stdout (see [`output`]).
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

mod args;
mod commands;
mod edit;
mod exit;
mod output;
mod profiles;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use confo::BackendSpec;

use args::{Cli, Command, DEFAULT_SPEC};
use exit::Failure;
use profiles::Profiles;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let prefix = if colour { "\x1b[1;31mconfo: error:\x1b[0m" } else { "confo: error:" };
            errln!("{prefix} {}", output::safe(&failure.message, output::Stream::Err));
            for line in &failure.details {
                errln!("  {}", output::safe(line, output::Stream::Err));
            }
            if let Some(hint) = failure.hint {
                errln!("  hint: {}", output::safe(&hint, output::Stream::Err));
            }
            ExitCode::from(failure.code)
        }
    }
}

fn init_logging(verbose: u8) {
    // Quiet by default: confo's own warnings only (the drivers' are internals that confo's
    // errors already say in sentences); -v and -vv show everything.
    let default = match verbose {
        0 => "off,confo=warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        // confo's own warnings, as sentences: `WARN …` without a time stamp or module path.
        builder.without_time().with_target(false).init();
    } else {
        builder.init();
    }
}

/// The spec for `--backend` (a spec or a profile), else CONFO_BACKEND, else the default
/// profile, else ./Configurations.
pub(crate) fn resolve_spec(given: Option<&str>) -> Result<BackendSpec, Failure> {
    let text = match given.map(str::to_owned).or_else(|| std::env::var("CONFO_BACKEND").ok()) {
        Some(text) if text.contains(':') => profiles::expand(&text)?,
        Some(name) => Profiles::load()?.resolve(&name)?,
        None => {
            let profiles = Profiles::load()?;
            match &profiles.default {
                Some(name) => profiles.resolve(name)?,
                None => DEFAULT_SPEC.to_owned(),
            }
        }
    };
    Ok(text.parse()?)
}

/// What this run's writes are recorded as in history: `--message`, and the backend named.
static CONTEXT: std::sync::OnceLock<(Option<String>, Option<String>)> = std::sync::OnceLock::new();

/// Who this run's writes are recorded as made by: the actor (`$CONFO_ACTOR`, else the
/// profile's, else `user@host`), this host, the tool `cli`, and `--message`.
pub(crate) fn author() -> std::sync::Arc<confo::model::history::Author> {
    let (message, backend) = CONTEXT.get().cloned().unwrap_or_default();
    let mut author = confo::model::history::Author::current("cli").with_message(message);
    if std::env::var("CONFO_ACTOR").map_or(true, |a| a.trim().is_empty()) {
        if let Some(actor) = profiles::profile_actor(backend.as_deref()) {
            author = author.with_actor(actor);
        }
    }
    std::sync::Arc::new(author)
}

/// A manager with one backend loaded and active.
/// The keyring, if one is there and readable: writes over sealed secrets seal plain values
/// again with it (without one they are refused). One that cannot be read is left to the
/// commands that need it to report.
pub(crate) fn keyring_at_hand() -> Option<std::sync::Arc<confo::secrets::Keyring>> {
    confo::secrets::Keyring::find().ok().flatten().map(std::sync::Arc::new)
}

/// A store of `spec` whose writes are recorded as this command's and seal with the keyring at
/// hand.
pub(crate) fn open_store(spec: &BackendSpec) -> Result<confo::blocking::Store, Failure> {
    Ok(confo::blocking::Store::open(spec)?.with_author(author()).with_keyring(keyring_at_hand()))
}

/// Parses nothing more: dispatches each command to its module.
fn run(cli: Cli) -> Result<(), Failure> {
    let output = cli.output;
    let serve = matches!(cli.command, Command::Serve { .. });
    if cli.backend.len() > 1 && !serve {
        return Err(Failure::usage("--backend is given once (only serve takes several)"));
    }
    let backend = cli.backend.first().cloned();
    if !serve {
        let _ = CONTEXT.set((cli.message.clone(), backend.clone()));
    }
    profiles::use_profile_keyring(backend.as_deref());
    let spec = || resolve_spec(backend.as_deref());
    // Each command once, to its module; each opens the store it needs.
    match cli.command {
        command @ Command::Serve { .. } => commands::serve::serve(command, &cli.backend),
        Command::Backend(command) => commands::backends::backend_command(command, output),
        Command::Keys(command) => commands::secrets::keys(command),
        Command::Token(command) => commands::serve::token(command, output),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "confo", &mut std::io::stdout());
            Ok(())
        }
        Command::Copy { from, to, namespaces } => commands::transfer::copy(&from, &to, &namespaces),
        Command::Diff { left, right, namespaces } if commands::history::revision_target(&left).is_none() => {
            let right = right.ok_or_else(|| {
                Failure::usage("diff needs LEFT and RIGHT (backends or document files), or NS/CONFIG@N [NS/CONFIG@M]")
            })?;
            commands::transfer::diff(&left, &right, &namespaces, output)
        }
        Command::Diff { left, right, namespaces } => {
            let spec = spec()?;
            if !namespaces.is_empty() {
                return Err(Failure::usage("diff NS/CONFIG@N takes at most one more revision"));
            }
            commands::history::diff(&spec, &left, right.as_deref(), output)
        }
        command @ (Command::Get { .. } | Command::Set { .. } | Command::Rm { .. } | Command::Edit { .. }) => {
            commands::configurations::point_command(command, &spec()?, output)
        }
        Command::Secret(command) => commands::secrets::secret(command, &spec()?),
        Command::Secrets(command) => commands::secrets::secrets(command, &spec()?, output),
        Command::History { target, purge_field: Some(field), .. } => {
            commands::history::purge(&spec()?, &target, &field)
        }
        Command::History { target, limit, before, purge_field: None } => {
            commands::history::history(&spec()?, &target, limit, before, output)
        }
        Command::Show { target, field, reveal } => {
            commands::history::show(&spec()?, &target, field.as_deref(), reveal, output)
        }
        Command::Rollback { target, to } => commands::history::rollback(&spec()?, &target, to),
        Command::Schema(command) => commands::schema::schema(command, &spec()?, output),
        Command::Validate { namespaces } => commands::schema::validate(&spec()?, &namespaces, output),
        Command::Repair { fix, key, acls, fix_acls } => match acls || fix_acls {
            true => commands::schema::repair_acls(&spec()?, fix_acls),
            false => commands::schema::repair(&spec()?, fix, key),
        },
        Command::Log { namespace, since, actor, limit } => {
            commands::history::log(&spec()?, &namespace, since.as_deref(), actor, limit, output)
        }
        Command::Ns(command) => commands::namespaces::namespaces(&spec()?, command, output),
        Command::Ls { namespace } => commands::namespaces::list(&spec()?, &namespace, output),
        Command::Watch { target } => commands::watch::watch(&spec()?, &target),
        Command::Export { namespaces, file, skip_corrupt, reveal } => {
            commands::transfer::export(&spec()?, &namespaces, file, skip_corrupt, reveal, output)
        }
        Command::Import { file, dry_run, prune } => commands::transfer::import(&spec()?, &file, dry_run, prune),
    }
}
