//! `confo`: the command-line tool. It parses, calls the library, prints; nothing else.
//!
//! Exit codes: 0 ok, 1 other failure, 2 usage (bad arguments, names, JSON, spec or profile), 3
//! not found, 4 conflict, 5 unavailable or unauthorized. Data goes to stdout, messages to
//! stderr.

mod edit;
mod output;
mod profiles;

/// `println!` that never panics on a closed stdout (see [`output`]).
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use confo::blocking::{Confo, Store};
use confo::error::Missing;
use confo::transfer::{Action, Difference, Document};
use confo::{BackendSpec, Error, ErrorKind, FieldEdit, Precondition, Removal};
use serde_json::Value;

use profiles::Profiles;

/// The spec used when neither --backend, CONFO_BACKEND nor a default profile is given.
const DEFAULT_SPEC: &str = "file:./Configurations";

#[derive(Parser, Debug)]
#[command(
    name = "confo",
    version,
    about = "Distributed configuration manager: namespaces of JSON configurations on files, Redis, ZooKeeper or etcd",
    after_help = "Examples:\n  confo ns create sales\n  confo set sales/database host=127.0.0.1 port=5432\n  \
                  confo get sales/database port\n  confo --backend file:/etc/myapp ls sales\n  \
                  confo --backend redis://127.0.0.1:6379 ns ls\n  confo --backend zk://127.0.0.1:2181 ls systemA\n  \
                  confo backend add prod 'redis://app:${REDIS_PASSWORD}@10.0.0.5:6379' && confo -b prod ns ls\n  \
                  confo copy --from file:./Configurations --to prod\n\n\
                  Backends: --backend takes a spec or a profile name; default $CONFO_BACKEND, then the default\n\
                  profile, then file:./Configurations. Profiles live in $CONFO_CONFIG or ~/.config/confo/config.toml.\n\n\
                  Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict, 5 unavailable or unauthorized."
)]
struct Cli {
    /// A backend spec (file:PATH, redis://host:port, zk://host:port[/chroot], etcd://host:port, memory:; see the
    /// README for credentials, TLS and Sentinel) or a profile name.
    #[arg(long, short = 'b', global = true, value_name = "SPEC|PROFILE")]
    backend: Option<String>,

    /// Output format (default: JSON for data, one name per line for lists).
    #[arg(long, global = true, value_enum)]
    output: Option<Format>,

    /// More log output on stderr (-v, -vv); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Yaml,
    Toml,
    Table,
}

impl Format {
    /// The format's name in messages.
    fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
            Format::Table => "a table",
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Namespaces: list, create, remove.
    #[command(subcommand)]
    Ns(NsCommand),

    /// List the configurations of a namespace, one per line.
    #[command(after_help = "Examples:\n  confo ls sales\n  confo ls sales --output json")]
    Ls {
        /// The namespace.
        namespace: String,
    },

    /// Print a configuration, or one field of it (JSON unless --output says otherwise).
    #[command(
        after_help = "Examples:\n  confo get sales/database\n  confo get sales/database port\n  confo get sales/database --output yaml"
    )]
    Get {
        /// NS/CONFIG.
        target: String,
        /// One field of the configuration.
        field: Option<String>,
    },

    /// Set fields of a configuration (created if absent), or replace it; written at once.
    #[command(
        after_help = "VALUE is parsed as JSON when it parses (port=5432 is a number, tags=[\"a\",\"b\"] a list)\n\
                            and is a string otherwise (host=127.0.0.1). A lone - reads a JSON object from stdin.\n\n\
                            Examples:\n  confo set sales/database host=127.0.0.1 port=5432\n  \
                            confo set sales/database --json '{\"host\": \"db\", \"port\": 5432}'\n  \
                            confo set sales/database --file database.json\n  \
                            cat database.json | confo set sales/database -"
    )]
    Set {
        /// NS/CONFIG.
        target: String,
        /// FIELD=VALUE pairs, or - to read a JSON object from stdin.
        #[arg(value_name = "FIELD=VALUE", required_unless_present_any = ["json", "file"], conflicts_with_all = ["json", "file"])]
        assignments: Vec<String>,
        /// Replace the whole configuration with this JSON object.
        #[arg(long, value_name = "OBJECT", conflicts_with = "file")]
        json: Option<String>,
        /// Replace the whole configuration with the JSON object in this file.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },

    /// Edit a configuration in $VISUAL or $EDITOR; written only if it changed and nobody else
    /// changed it meanwhile.
    #[command(after_help = "Examples:\n  confo edit sales/database\n  EDITOR=nano confo edit sales/database")]
    Edit {
        /// NS/CONFIG.
        target: String,
    },

    /// Remove a configuration, or one field of it; written at once.
    #[command(after_help = "Examples:\n  confo rm sales/database port\n  confo rm sales/database")]
    Rm {
        /// NS/CONFIG.
        target: String,
        /// Remove only this field.
        field: Option<String>,
    },

    /// Print one JSON line per change of a namespace (or one configuration) until interrupted.
    #[command(after_help = "Each line is an object like\n  \
                            {\"event\":\"changed\",\"namespace\":\"sales\",\"configuration\":\"database\",\"value\":{...}}\n\
                            with event one of created, changed, deleted, namespace_created, namespace_deleted.\n\n\
                            Examples:\n  confo watch sales\n  confo watch sales/database")]
    Watch {
        /// NS or NS/CONFIG.
        target: String,
    },

    /// Write namespaces (all by default) as one document {"<ns>": {"<config>": {...}}}.
    #[command(
        after_help = "The format is --output, else the -o FILE's extension (.json, .yaml, .yml, .toml), else JSON.\n\n\
                            Examples:\n  confo export > everything.json\n  confo export sales analytics -o backup.yaml"
    )]
    Export {
        /// Namespaces to export (all when none).
        namespaces: Vec<String>,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Exit 0 even if corrupt entries were skipped (they are still named on stderr).
        #[arg(long)]
        skip_corrupt: bool,
    },

    /// Bring the backend to a document: show what is created, changed, deleted, then do it.
    #[command(
        after_help = "Without --prune nothing is deleted; with it, configurations of the document's namespaces that the\n\
                            document lacks are deleted (other namespaces are never touched).\n\n\
                            Examples:\n  confo import backup.json --dry-run\n  confo import backup.yaml --prune"
    )]
    Import {
        /// The document (JSON, YAML or TOML, by extension; - for JSON on stdin).
        file: PathBuf,
        /// Show the plan only; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also delete configurations the document's namespaces lack.
        #[arg(long)]
        prune: bool,
    },

    /// Copy namespaces (all by default) from one backend to another.
    #[command(after_help = "Examples:\n  confo copy --from file:./Configurations --to redis://127.0.0.1:6379\n  \
                            confo copy --from zk://10.0.0.7:2181 --to prod sales")]
    Copy {
        /// Source backend (spec or profile).
        #[arg(long, value_name = "SPEC|PROFILE")]
        from: String,
        /// Target backend (spec or profile).
        #[arg(long, value_name = "SPEC|PROFILE")]
        to: String,
        /// Namespaces to copy (all when none).
        namespaces: Vec<String>,
    },

    /// Show what differs between two backends, or a document file and a backend.
    #[command(
        after_help = "Each line is `- NS/CONFIG` (only in LEFT), `+ NS/CONFIG` (only in RIGHT) or `~ NS/CONFIG` (different).\n\
                            LEFT and RIGHT are specs, profile names, or document files.\n\n\
                            Examples:\n  confo diff file:./Configurations redis://127.0.0.1:6379\n  confo diff backup.json prod sales"
    )]
    Diff {
        /// A backend or a document file.
        left: String,
        /// A backend or a document file.
        right: String,
        /// Namespaces to compare (all when none).
        namespaces: Vec<String>,
    },

    /// Named backends (profiles): list, add, remove, choose the default.
    #[command(subcommand)]
    Backend(BackendCommand),

    /// Print a shell completion script.
    #[command(after_help = "Example:\n  confo completions bash > /etc/bash_completion.d/confo")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum NsCommand {
    /// List namespaces, one per line.
    #[command(after_help = "Examples:\n  confo ns ls\n  confo ns ls --output json")]
    Ls,
    /// Create a namespace (succeeds if it already exists).
    #[command(after_help = "Example:\n  confo ns create sales")]
    Create {
        /// The namespace.
        namespace: String,
    },
    /// Remove a namespace; one that holds configurations needs --force.
    #[command(after_help = "Examples:\n  confo ns rm scratch\n  confo ns rm sales --force")]
    Rm {
        /// The namespace.
        namespace: String,
        /// Remove it with every configuration in it.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BackendCommand {
    /// List profiles: NAME SPEC, the default marked with *.
    #[command(after_help = "Example:\n  confo backend ls")]
    Ls,
    /// Add (or replace) a profile. Use ${VAR} or ${file:PATH} for passwords. It becomes the
    /// default only with --default (or `confo backend use`).
    #[command(
        after_help = "Example:\n  confo backend add prod 'redis://app:${REDIS_PASSWORD}@10.0.0.5:6379' --default"
    )]
    Add {
        /// Profile name.
        name: String,
        /// Backend spec.
        spec: String,
        /// Make it the default.
        #[arg(long)]
        default: bool,
    },
    /// Remove a profile.
    #[command(after_help = "Example:\n  confo backend rm staging")]
    Rm {
        /// Profile name.
        name: String,
    },
    /// Make a profile the default.
    #[command(after_help = "Example:\n  confo backend use prod")]
    Use {
        /// Profile name.
        name: String,
    },
}

/// A failure to report: the message, an optional hint, and the exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
    hint: Option<String>,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), hint: None }
    }

    fn usage(message: impl Into<String>) -> Self {
        Failure::new(2, message)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        // A partial failure exits as its cause would (5 for a server that went away, 4 for a
        // conflict), and says what to do with the part left.
        let code = match error.cause().kind() {
            ErrorKind::NotFound => 3,
            ErrorKind::InvalidName | ErrorKind::InvalidSpec | ErrorKind::InvalidValue => 2,
            ErrorKind::Conflict => 4,
            ErrorKind::Unavailable | ErrorKind::Unauthorized | ErrorKind::Insecure => 5,
            _ => 1,
        };
        let hint = match &error {
            Error::NotFound { what: Missing::Namespace, name, .. } => {
                Some(format!("create it with: confo ns create {name}"))
            }
            Error::NotEmpty { .. } => Some("add --force to remove it with its configurations".to_owned()),
            Error::PersistIncomplete { written, unwritten, unknown, .. } => Some(format!(
                "{} written, {} not written, {} in doubt; once the store is back, running the same command \
                 again finishes the work (what is already there is left alone)",
                written.len(),
                unwritten.len(),
                unknown.len()
            )),
            e if e.is_conflict() => Some("someone changed it meanwhile: look at it again and retry".to_owned()),
            _ => None,
        };
        Failure { code, message: error.to_string(), hint }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let prefix = if colour { "\x1b[1;31mconfo: error:\x1b[0m" } else { "confo: error:" };
            errln!("{prefix} {}", output::safe(&failure.message, output::Stream::Err));
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
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// The spec for `--backend` (a spec or a profile), else CONFO_BACKEND, else the default
/// profile, else ./Configurations.
fn resolve_spec(given: Option<&str>) -> Result<BackendSpec, Failure> {
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

/// A manager with one backend loaded and active.
fn open(spec: &BackendSpec) -> Result<Confo, Failure> {
    let confo = Confo::new()?;
    confo.load_backend("cli", spec)?;
    confo.activate_backend("cli")?;
    Ok(confo)
}

fn run(cli: Cli) -> Result<(), Failure> {
    let output = cli.output;
    // Commands that need no backend, or two of their own.
    match cli.command {
        Command::Backend(command) => return backend_command(command, output),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "confo", &mut std::io::stdout());
            return Ok(());
        }
        Command::Copy { from, to, namespaces } => return copy(&from, &to, &namespaces),
        Command::Diff { left, right, namespaces } => return diff(&left, &right, &namespaces, output),
        _ => {}
    }
    let spec = resolve_spec(cli.backend.as_deref())?;
    let command = cli.command;
    if let Command::Get { .. } | Command::Set { .. } | Command::Rm { .. } | Command::Edit { .. } = command {
        return point_command(command, &spec, output);
    }
    let confo = open(&spec)?;
    match command {
        Command::Ns(NsCommand::Ls) => output::list(&confo.namespaces()?.all, output)?,
        Command::Ns(NsCommand::Create { namespace }) => {
            if !confo.create_namespace(&namespace)? {
                errln!("confo: namespace {namespace:?} already exists");
            }
        }
        Command::Ns(NsCommand::Rm { namespace, force }) => {
            confo.remove_namespace(&namespace, if force { Removal::Recursive } else { Removal::IfEmpty }).map_err(
                // The namespace is gone either way: no hint to create it.
                |e| if e.is_not_found() { Failure { hint: None, ..Failure::from(e) } } else { Failure::from(e) },
            )?;
        }
        Command::Ls { namespace } => {
            confo.use_namespace(&namespace)?;
            let names = confo.list()?;
            let corrupt = confo.corrupt()?;
            for (name, corruption) in &corrupt {
                errln!(
                    "confo: warning: {} is corrupt: {}",
                    output::safe(name, output::Stream::Err),
                    output::safe(&corruption.to_string(), output::Stream::Err)
                );
            }
            match output.filter(|f| *f != Format::Table) {
                // Readable configurations as names; a corrupt entry as an object saying so.
                Some(format) if !corrupt.is_empty() => {
                    let items: Vec<Value> = names
                        .iter()
                        .map(|name| match corrupt.iter().find(|(n, _)| n == name) {
                            Some((_, c)) => serde_json::json!({"name": name, "corrupt": c.to_string()}),
                            None => Value::String(name.clone()),
                        })
                        .collect();
                    output::value(&Value::Array(items), format)?;
                }
                _ => output::list(&names, output)?,
            }
        }
        Command::Watch { target } => {
            let (namespace, config) = match target.split_once('/') {
                Some((ns, cfg)) if !ns.is_empty() && !cfg.is_empty() => (ns, Some(cfg)),
                Some(_) => return Err(Failure::usage(format!("expected NS or NS/CONFIG, got {target:?}"))),
                None => (target.as_str(), None),
            };
            let watcher = confo.watch(namespace, config)?;
            errln!("confo: watching {target} (Ctrl-C to stop)");
            for event in watcher {
                outln!("{}", event?.to_json());
                // A closed pipe (confo watch | head -1) ends the command quietly.
                if output::stdout_closed() {
                    return Ok(());
                }
            }
        }
        Command::Export { namespaces, file, skip_corrupt } => {
            let (document, skipped) = confo.export_readable(&namespaces)?;
            let format = output.or_else(|| file.as_deref().and_then(format_of)).unwrap_or(Format::Json);
            let value = serde_json::to_value(&document).map_err(|e| Failure::new(1, e.to_string()))?;
            let text = output::render(&value, format)?;
            match file {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| Failure::new(1, format!("{}: {e}", path.display())))?
                }
                None => output::stdout(format_args!("{text}")),
            }
            for corruption in &skipped {
                errln!("confo: skipped corrupt entry {}", output::safe(&corruption.to_string(), output::Stream::Err));
            }
            if !skipped.is_empty() && !skip_corrupt {
                return Err(Failure::new(
                    1,
                    format!(
                        "{} corrupt entr(y/ies) skipped; the rest is exported (--skip-corrupt accepts that)",
                        skipped.len()
                    ),
                ));
            }
        }
        Command::Import { file, dry_run, prune } => {
            let document = confo.parse_document(read_document(&file)?)?;
            let plan = confo.plan(&document, prune)?;
            for namespace in &plan.new_namespaces {
                outln!("create namespace {}", output::safe(namespace, output::Stream::Out));
            }
            for step in &plan.steps {
                let target = format!("{}/{}", step.namespace, step.configuration);
                outln!("{} {}", step.action, output::safe(&target, output::Stream::Out));
            }
            let summary = format!(
                "{} to create, {} to change, {} to delete, {} unchanged",
                plan.count(Action::Create),
                plan.count(Action::Change),
                plan.count(Action::Delete),
                plan.unchanged
            );
            if dry_run {
                errln!("confo: dry run: {summary}; nothing written");
            } else {
                confo.apply(&plan, &document, |_, _| {})?;
                errln!("confo: imported: {summary}");
            }
        }
        Command::Backend(_)
        | Command::Completions { .. }
        | Command::Copy { .. }
        | Command::Diff { .. }
        | Command::Get { .. }
        | Command::Set { .. }
        | Command::Rm { .. }
        | Command::Edit { .. } => {}
    }
    Ok(())
}

/// `get`, `set`, `rm` and `edit`: one configuration, read and written on its own, so they cost
/// the same whatever the namespace's size.
fn point_command(command: Command, spec: &BackendSpec, output: Option<Format>) -> Result<(), Failure> {
    let store = Store::open(spec)?;
    match command {
        Command::Get { target, field } => {
            let (namespace, config) = split_target(&target)?;
            let not_found =
                |what, name: String| Error::NotFound { what, name, location: format!("namespace {namespace:?}") };
            let stored =
                store.get(namespace, config)?.ok_or_else(|| not_found(Missing::Configuration, config.into()))?;
            let value = match field {
                None => Value::Object((*stored.value).clone()),
                Some(field) => stored
                    .value
                    .get(&field)
                    .cloned()
                    .ok_or_else(|| not_found(Missing::Field, format!("{config}.{field}")))?,
            };
            output::value(&value, output.unwrap_or(Format::Json))?;
        }
        Command::Set { target, assignments, json, file } => {
            let (namespace, config) = split_target(&target)?;
            let (replacement, fields) = if assignments.len() == 1 && assignments[0] == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| Failure::new(1, format!("stdin: {e}")))?;
                (Some(parse_object(&text, "stdin")?), Vec::new())
            } else {
                let replacement = match (json, file) {
                    (Some(text), _) => Some(parse_object(&text, "--json")?),
                    (None, Some(path)) => Some(parse_object(&read_file(&path)?, &path.display().to_string())?),
                    (None, None) => None,
                };
                let fields = assignments.iter().map(|a| parse_assignment(a)).collect::<Result<Vec<_>, _>>()?;
                (replacement, fields)
            };
            match replacement {
                // A whole document: written only if the configuration is unchanged since read.
                Some(object) => drop(store.replace(namespace, config, object)?),
                // Field edits apply to whatever is stored: retried on conflict.
                None => {
                    let edits: Vec<FieldEdit> =
                        fields.into_iter().map(|(field, value)| FieldEdit::Set(field.to_owned(), value)).collect();
                    store.update_fields(namespace, config, &edits)?;
                }
            }
        }
        Command::Rm { target, field } => {
            let (namespace, config) = split_target(&target)?;
            match field {
                Some(field) => drop(store.update_fields(namespace, config, &[FieldEdit::Remove(field)])?),
                None => store.remove(namespace, config)?,
            }
        }
        Command::Edit { target } => edit(&store, &target)?,
        _ => {}
    }
    Ok(())
}

fn backend_command(command: BackendCommand, output: Option<Format>) -> Result<(), Failure> {
    let mut profiles = Profiles::load_for_editing()?;
    match command {
        BackendCommand::Ls => {
            let shown = profiles.redacted();
            if let Some(format) = output.filter(|f| *f != Format::Table) {
                let mut value = serde_json::Map::new();
                if let Some(default) = &profiles.default {
                    value.insert("default".into(), default.clone().into());
                }
                value.insert("backends".into(), serde_json::json!(shown));
                output::value(&Value::Object(value), format)?;
            } else {
                for (name, spec) in &shown {
                    let mark = if profiles.default.as_deref() == Some(name) { "*" } else { " " };
                    outln!("{mark} {name}\t{spec}");
                }
            }
            return Ok(());
        }
        BackendCommand::Add { name, spec, default } => {
            if name.contains(':') || name.is_empty() {
                return Err(Failure::usage("a profile name must not be empty or contain ':'"));
            }
            // Check the spec's syntax before saving it (its ${...} are resolved only when used).
            profiles::with_placeholders(&spec).parse::<BackendSpec>()?;
            profiles.backends.insert(name.clone(), spec);
            // Adding a profile never changes where commands without --backend go.
            if default {
                profiles.default = Some(name);
            }
        }
        BackendCommand::Rm { name } => {
            if profiles.backends.remove(&name).is_none() {
                return Err(Failure::new(3, format!("backend profile {name:?} not found")));
            }
            if profiles.default.as_deref() == Some(name.as_str()) {
                profiles.default = None;
            }
        }
        BackendCommand::Use { name } => {
            if !profiles.backends.contains_key(&name) {
                return Err(Failure::new(3, format!("backend profile {name:?} not found")));
            }
            profiles.default = Some(name);
        }
    }
    profiles.save()
}

/// Opens a side of `diff` or `copy`: a document file, or a backend spec or profile.
enum Side {
    Document(Document),
    Backend(Confo),
}

fn side(text: &str) -> Result<Side, Failure> {
    let path = Path::new(text);
    let looks_like_a_file = text.contains('/') || format_of(path).is_some();
    if !text.contains(':') && looks_like_a_file && !path.exists() {
        return Err(Failure::new(3, format!("{text}: no such document file (nor a backend spec, which has a ':')")));
    }
    if !text.contains(':') && path.is_file() {
        let scratch = open(&BackendSpec::memory())?;
        return Ok(Side::Document(scratch.parse_document(read_document(path)?)?));
    }
    Ok(Side::Backend(open(&resolve_spec(Some(text))?)?))
}

fn copy(from: &str, to: &str, namespaces: &[String]) -> Result<(), Failure> {
    let source = open(&resolve_spec(Some(from))?)?;
    let target = open(&resolve_spec(Some(to))?)?;
    let document = source.export(namespaces)?;
    target.check_names(&document)?; // the target's name rules, before anything is written
    let plan = target.plan(&document, false)?;
    let show_progress = std::io::stderr().is_terminal();
    target.apply(&plan, &document, |done, total| {
        if show_progress {
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            output::stderr(format_args!("\r[{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled)));
            if done == total {
                errln!("");
            }
        }
    })?;
    let configurations: usize = document.values().map(|c| c.len()).sum();
    errln!(
        "confo: copied {configurations} configuration(s) in {} namespace(s): {} created, {} changed, {} unchanged; {} namespace(s) created",
        document.len(),
        plan.count(Action::Create),
        plan.count(Action::Change),
        plan.unchanged,
        plan.new_namespaces.len()
    );
    Ok(())
}

fn diff(left: &str, right: &str, namespaces: &[String], output: Option<Format>) -> Result<(), Failure> {
    let read = |side: Side| -> Result<Document, Failure> {
        Ok(match side {
            Side::Document(mut document) => {
                if !namespaces.is_empty() {
                    document.retain(|ns, _| namespaces.contains(ns));
                }
                document
            }
            Side::Backend(confo) => confo.export(namespaces)?,
        })
    };
    let (left, right) = (read(side(left)?)?, read(side(right)?)?);
    let differences = confo::transfer::diff(&left, &right);
    if output == Some(Format::Json) {
        let items: Vec<Value> = differences
            .iter()
            .map(|(ns, cfg, kind)| {
                let kind = match kind {
                    Difference::OnlyLeft => "only_left",
                    Difference::OnlyRight => "only_right",
                    Difference::Different => "different",
                };
                serde_json::json!({"namespace": ns, "configuration": cfg, "difference": kind})
            })
            .collect();
        return output::value(&Value::Array(items), Format::Json);
    }
    for (ns, cfg, kind) in differences {
        let mark = match kind {
            Difference::OnlyLeft => '-',
            Difference::OnlyRight => '+',
            Difference::Different => '~',
        };
        outln!("{mark} {}", output::safe(&format!("{ns}/{cfg}"), output::Stream::Out));
    }
    Ok(())
}

fn edit(store: &Store, target: &str) -> Result<(), Failure> {
    let (namespace, config) = split_target(target)?;
    let current = store.get(namespace, config)?;
    let before = current.as_ref().map(|c| (*c.value).clone()).unwrap_or_default();
    let text = serde_json::to_string_pretty(&before).map_err(|e| Failure::new(1, e.to_string()))?;
    let file = edit::EditFile::create(config, &format!("{text}\n"))?;
    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    let status = file
        .run_editor(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{editor} \"$1\""))
                .arg("confo-edit")
                .arg(file.path()),
        )
        .map_err(|e| Failure::new(1, format!("cannot run the editor {editor:?}: {e}")));
    let edited = std::fs::read_to_string(file.path());
    drop(file);
    if !status?.success() {
        return Err(Failure::new(1, format!("the editor {editor:?} failed; nothing written")));
    }
    let edited = edited.map_err(|e| Failure::new(1, e.to_string()))?;
    let after = parse_object(&edited, "the edited configuration").map_err(|mut f| {
        f.message.push_str("; nothing written");
        f
    })?;
    if after == before {
        errln!("confo: no changes");
        return Ok(());
    }
    // Written only if nobody changed it while the editor was open.
    store.put(namespace, config, after, current.map_or(Precondition::Absent, |c| Precondition::Version(c.version)))?;
    Ok(())
}

fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "json" => Some(Format::Json),
        "yaml" | "yml" => Some(Format::Yaml),
        "toml" => Some(Format::Toml),
        _ => None,
    }
}

fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound { 3 } else { 1 };
        Failure::new(code, format!("{}: {e}", path.display()))
    })
}

/// A document file as JSON, whatever its format (by extension; `-` is JSON on stdin).
fn read_document(path: &Path) -> Result<Value, Failure> {
    let (text, name) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| Failure::new(1, format!("stdin: {e}")))?;
        (text, "stdin".to_owned())
    } else {
        (read_file(path)?, path.display().to_string())
    };
    let bad = |e: String| Failure::usage(format!("{name} is not a valid document: {e}"));
    match format_of(path) {
        Some(Format::Yaml) => serde_yaml::from_str(&text).map_err(|e| bad(e.to_string())),
        Some(Format::Toml) => toml::from_str(&text).map_err(|e| bad(e.to_string())),
        _ => Ok(parse_json(&text, &name)?),
    }
}

/// `NS/CONFIG` → (NS, CONFIG). Names cannot contain `/`, so the first one splits.
fn split_target(target: &str) -> Result<(&str, &str), Failure> {
    target
        .split_once('/')
        .filter(|(ns, cfg)| !ns.is_empty() && !cfg.is_empty())
        .ok_or_else(|| Failure::usage(format!("expected NS/CONFIG, got {target:?}")))
}

/// `FIELD=VALUE` → (FIELD, VALUE as JSON if it parses, else as a string). JSON that parses but
/// repeats a key, or nests too deeply, is an error rather than a string.
fn parse_assignment(assignment: &str) -> Result<(&str, Value), Failure> {
    let (field, raw) = assignment
        .split_once('=')
        .filter(|(field, _)| !field.is_empty())
        .ok_or_else(|| Failure::usage(format!("expected FIELD=VALUE, got {assignment:?}")))?;
    let value = match serde_json::from_str::<Value>(raw) {
        Ok(_) => parse_json(raw, &format!("the value of {field}"))?,
        Err(e) if e.to_string().starts_with("recursion limit") => parse_json(raw, &format!("the value of {field}"))?,
        Err(_) => Value::String(raw.to_owned()),
    };
    Ok((field, value))
}

/// Strict JSON (see `confo::json`), with the CLI's wording: "--json is not valid JSON: …".
fn parse_json(text: &str, what: &str) -> Result<Value, Failure> {
    confo::json::parse(text, what).map_err(|e| match e {
        Error::InvalidValue { location, message } => Failure::usage(format!("{location} is {message}")),
        other => Failure::from(other),
    })
}

fn parse_object(text: &str, what: &str) -> Result<confo::Configuration, Failure> {
    match parse_json(text, what)? {
        Value::Object(map) => Ok(map),
        _ => Err(Failure::usage(format!("{what} needs a JSON object, like '{{\"host\": \"db\"}}'"))),
    }
}
