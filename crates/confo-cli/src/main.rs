//! `confo`: the command-line tool. It parses, calls the library, prints; nothing else.
//!
//! Exit codes: 0 ok, 1 other failure, 2 usage (bad arguments, names, JSON or spec), 3 not
//! found, 4 conflict, 5 unavailable or unauthorized. Data goes to stdout, messages to stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use confo::blocking::Confo;
use confo::error::Missing;
use confo::{BackendSpec, Error, Removal};
use serde_json::Value;

/// The spec used when neither --backend nor CONFO_BACKEND is given.
const DEFAULT_SPEC: &str = "file:./Configurations";

#[derive(Parser, Debug)]
#[command(
    name = "confo",
    version,
    about = "Distributed configuration manager: namespaces of JSON configurations on files, Redis, ZooKeeper or etcd",
    after_help = "Examples:\n  confo ns create sales\n  confo set sales/database host=127.0.0.1 port=5432\n  \
                  confo get sales/database port\n  confo --backend file:/etc/myapp ls sales\n  confo --backend redis://127.0.0.1:6379 ns ls\n  confo --backend zk://127.0.0.1:2181 ls systemA\n\n\
                  Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict, 5 unavailable or unauthorized."
)]
struct Cli {
    /// Backend spec (file:PATH, memory:, redis://[user:pass@]host:port[/db], rediss://..., redis+sentinel://h:p,h:p/master,
    /// zk://[user:pass@]host:port[,host:port][/chroot], etcd://[user:pass@]host:port[,host:port]).
    /// Default: $CONFO_BACKEND, else file:./Configurations.
    #[arg(long, short = 'b', global = true, value_name = "SPEC")]
    backend: Option<String>,

    /// More log output on stderr (-v, -vv); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Namespaces: list, create, remove.
    #[command(subcommand)]
    Ns(NsCommand),

    /// List the configurations of a namespace, one per line.
    #[command(after_help = "Example:\n  confo ls sales")]
    Ls {
        /// The namespace.
        namespace: String,
    },

    /// Print a configuration, or one field of it, as JSON.
    #[command(after_help = "Examples:\n  confo get sales/database\n  confo get sales/database port")]
    Get {
        /// NS/CONFIG.
        target: String,
        /// One field of the configuration.
        field: Option<String>,
    },

    /// Set fields of a configuration (created if absent), or replace it with --json; written at once.
    #[command(
        after_help = "VALUE is parsed as JSON when it parses (port=5432 is a number, tags=[\"a\",\"b\"] a list)\n\
                            and is a string otherwise (host=127.0.0.1).\n\n\
                            Examples:\n  confo set sales/database host=127.0.0.1 port=5432\n  \
                            confo set sales/database --json '{\"host\": \"db\", \"port\": 5432}'"
    )]
    Set {
        /// NS/CONFIG.
        target: String,
        /// FIELD=VALUE pairs.
        #[arg(value_name = "FIELD=VALUE", required_unless_present = "json", conflicts_with = "json")]
        assignments: Vec<String>,
        /// Replace the whole configuration with this JSON object.
        #[arg(long, value_name = "OBJECT")]
        json: Option<String>,
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

    /// Remove a configuration, or one field of it; written at once.
    #[command(after_help = "Examples:\n  confo rm sales/database port\n  confo rm sales/database")]
    Rm {
        /// NS/CONFIG.
        target: String,
        /// Remove only this field.
        field: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum NsCommand {
    /// List namespaces, one per line.
    Ls,
    /// Create a namespace (succeeds if it already exists).
    Create {
        /// The namespace.
        namespace: String,
    },
    /// Remove a namespace; one that holds configurations needs --force.
    Rm {
        /// The namespace.
        namespace: String,
        /// Remove it with every configuration in it.
        #[arg(long)]
        force: bool,
    },
}

/// A failure to report: the message, an optional hint, and the exit code.
struct Failure {
    code: u8,
    message: String,
    hint: Option<String>,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure { code: 2, message: message.into(), hint: None }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::NotFound { .. } => 3,
            Error::InvalidName { .. } | Error::InvalidSpec { .. } | Error::InvalidValue { .. } => 2,
            e if e.is_conflict() => 4,
            Error::Unavailable { .. } | Error::Unauthorized { .. } => 5,
            _ => 1,
        };
        let hint = match &error {
            Error::NotFound { what: Missing::Namespace, name, .. } => {
                Some(format!("create it with: confo ns create {name}"))
            }
            Error::NotEmpty { .. } => Some("add --force to remove it with its configurations".to_owned()),
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
            eprintln!("confo: error: {}", failure.message);
            if let Some(hint) = failure.hint {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(failure.code)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(cli: Cli) -> Result<(), Failure> {
    let spec_text = cli.backend.or_else(|| std::env::var("CONFO_BACKEND").ok()).unwrap_or_else(|| DEFAULT_SPEC.into());
    let spec: BackendSpec = spec_text.parse()?;
    // Parse every argument before touching the store, so a usage error writes nothing.
    let command = cli.command;
    let confo = Confo::new()?;
    confo.load_backend("cli", &spec)?;
    confo.activate_backend("cli")?;
    match command {
        Command::Ns(NsCommand::Ls) => print_lines(&confo.namespaces()?.all),
        Command::Ns(NsCommand::Create { namespace }) => {
            if !confo.create_namespace(&namespace)? {
                eprintln!("confo: namespace {namespace:?} already exists");
            }
        }
        Command::Ns(NsCommand::Rm { namespace, force }) => {
            confo.remove_namespace(&namespace, if force { Removal::Recursive } else { Removal::IfEmpty })?;
        }
        Command::Ls { namespace } => {
            confo.use_namespace(&namespace)?;
            print_lines(&confo.list()?);
        }
        Command::Get { target, field } => {
            let (namespace, config) = split_target(&target)?;
            confo.use_namespace(namespace)?;
            let not_found =
                |what, name: String| Error::NotFound { what, name, location: format!("namespace {namespace:?}") };
            let value = match field {
                None => Value::Object(
                    (*confo.get(config)?.ok_or_else(|| not_found(Missing::Configuration, config.into()))?).clone(),
                ),
                Some(field) => confo
                    .get_field(config, &field)?
                    .ok_or_else(|| not_found(Missing::Field, format!("{config}.{field}")))?,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).map_err(|e| Failure {
                    code: 1,
                    message: e.to_string(),
                    hint: None
                })?
            );
        }
        Command::Set { target, assignments, json } => {
            let (namespace, config) = split_target(&target)?;
            let replacement = json.map(|text| parse_object(&text)).transpose()?;
            let fields = assignments.iter().map(|a| parse_assignment(a)).collect::<Result<Vec<_>, _>>()?;
            confo.use_namespace(namespace)?;
            if let Some(object) = replacement {
                confo.replace(config, object)?;
            }
            for (field, value) in fields {
                confo.set(config, field, value)?;
            }
            confo.persist_configuration(namespace, config)?;
        }
        Command::Watch { target } => {
            let (namespace, config) = match target.split_once('/') {
                Some((ns, cfg)) if !ns.is_empty() && !cfg.is_empty() => (ns, Some(cfg)),
                Some(_) => return Err(Failure::usage(format!("expected NS or NS/CONFIG, got {target:?}"))),
                None => (target.as_str(), None),
            };
            let watcher = confo.watch(namespace, config)?;
            eprintln!("confo: watching {target} (Ctrl-C to stop)");
            let mut out = std::io::stdout().lock();
            for event in watcher {
                use std::io::Write;
                // A closed pipe (confo watch | head -1) ends the command quietly.
                if writeln!(out, "{}", event?.to_json()).and_then(|()| out.flush()).is_err() {
                    return Ok(());
                }
            }
        }
        Command::Rm { target, field } => {
            let (namespace, config) = split_target(&target)?;
            confo.use_namespace(namespace)?;
            match field {
                Some(field) => confo.remove_field(config, &field)?,
                None => confo.remove(config)?,
            }
            confo.persist_configuration(namespace, config)?;
        }
    }
    Ok(())
}

fn print_lines(lines: &[String]) {
    for line in lines {
        println!("{line}");
    }
}

/// `NS/CONFIG` → (NS, CONFIG). Names cannot contain `/`, so the first one splits.
fn split_target(target: &str) -> Result<(&str, &str), Failure> {
    target
        .split_once('/')
        .filter(|(ns, cfg)| !ns.is_empty() && !cfg.is_empty())
        .ok_or_else(|| Failure::usage(format!("expected NS/CONFIG, got {target:?}")))
}

/// `FIELD=VALUE` → (FIELD, VALUE as JSON if it parses, else as a string).
fn parse_assignment(assignment: &str) -> Result<(&str, Value), Failure> {
    let (field, raw) = assignment
        .split_once('=')
        .filter(|(field, _)| !field.is_empty())
        .ok_or_else(|| Failure::usage(format!("expected FIELD=VALUE, got {assignment:?}")))?;
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((field, value))
}

fn parse_object(text: &str) -> Result<confo::Configuration, Failure> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Failure::usage("--json needs a JSON object, like '{\"host\": \"db\"}'")),
        Err(e) => Err(Failure::usage(format!("--json is not valid JSON: {e}"))),
    }
}
