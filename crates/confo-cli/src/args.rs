//! The command line's grammar: clap's types for every command and option. Nothing here runs
//! anything.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The spec used when neither --backend, CONFO_BACKEND nor a default profile is given.
pub(crate) const DEFAULT_SPEC: &str = "file:./Configurations";

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
                  Exit codes: 0 ok, 1 error, 2 usage (and a write a schema refuses), 3 not found, 4 conflict,\n\
                  5 unavailable or unauthorized, 6 invalid (validate or repair found what it reports)."
)]
pub(crate) struct Cli {
    /// A backend spec (file:PATH, redis://host:port, zk://host:port[/chroot], etcd://host:port, memory:; see the
    /// README for credentials, TLS and Sentinel) or a profile name.
    /// Given once, except to `serve`, which serves every one given (NAME=SPEC names one).
    #[arg(long, short = 'b', global = true, value_name = "SPEC|PROFILE", action = clap::ArgAction::Append)]
    pub(crate) backend: Vec<String>,

    /// Output format (default: JSON for data, one name per line for lists).
    #[arg(long, global = true, value_enum)]
    pub(crate) output: Option<Format>,

    /// Why: recorded in the history of what this command writes.
    #[arg(long, global = true, value_name = "TEXT")]
    pub(crate) message: Option<String>,

    /// More log output on stderr (-v, -vv); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Json,
    Yaml,
    Toml,
    Table,
}

impl Format {
    /// The format's name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
            Format::Table => "a table",
        }
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
        /// Show secrets in the clear (needs the keyring); without it they print as "<secret>".
        #[arg(long)]
        reveal: bool,
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
        /// Write secrets in the clear (needs the keyring); without it they stay encrypted.
        #[arg(long)]
        reveal: bool,
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

    /// Show what differs between two backends, or a document file and a backend; or, field by
    /// field, between two revisions of a configuration (NS/CONFIG@N), or one and its current value.
    #[command(
        after_help = "Each line is `- NS/CONFIG` (only in LEFT), `+ NS/CONFIG` (only in RIGHT) or `~ NS/CONFIG` (different).\n\
                            LEFT and RIGHT are specs, profile names, or document files.\n\n\
                            Between revisions, each line is `- FIELD: OLD` (removed), `+ FIELD: NEW` (added) or\n\
                            `~ FIELD: OLD -> NEW` (changed), the older revision on the left.\n\n\
                            Examples:\n  confo diff file:./Configurations redis://127.0.0.1:6379\n  confo diff backup.json prod sales\n  \
                            confo diff sales/database@2 sales/database@5\n  confo diff sales/database@2"
    )]
    Diff {
        /// A backend or a document file; or NS/CONFIG@N.
        left: String,
        /// A backend or a document file; or NS/CONFIG@M (default with NS/CONFIG@N: the current value).
        right: Option<String>,
        /// Namespaces to compare (all when none).
        namespaces: Vec<String>,
    },

    /// The recorded history of a configuration, newest first: number, time, actor, operation,
    /// message.
    #[command(
        after_help = "Examples:\n  confo history sales/database\n  confo history sales/database --output json\n  \
                            confo history sales/database --before 40 --limit 20\n  \
                            confo history sales/database --purge-field password"
    )]
    History {
        /// NS/CONFIG.
        target: String,
        /// At most this many revisions (default 50).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Only revisions numbered below N (the next page).
        #[arg(long, value_name = "N")]
        before: Option<u64>,
        /// Instead of listing: replace FIELD (a name or a JSON pointer) by a marker in every
        /// revision that holds it in the clear (a field made secret after it was stored), and
        /// record the purge as a revision of its own.
        #[arg(long, value_name = "FIELD", conflicts_with_all = ["limit", "before"])]
        purge_field: Option<String>,
    },

    /// Print a configuration (or one field) as it was at revision N.
    #[command(after_help = "Examples:\n  confo show sales/database@3\n  confo show sales/database@3 port")]
    Show {
        /// NS/CONFIG@N.
        target: String,
        /// One field.
        field: Option<String>,
        /// Show secrets in the clear (needs the keyring).
        #[arg(long)]
        reveal: bool,
    },

    /// Write revision N's value again, as a new revision recorded as a rollback (never deletes).
    #[command(after_help = "Exit 3 if revision N is not kept, 4 if the configuration changed meanwhile.\n\n\
                            Examples:\n  confo rollback sales/database --to 3\n  \
                            confo rollback sales/database --to 3 --message 'port 6432 broke the app'")]
    Rollback {
        /// NS/CONFIG.
        target: String,
        /// The revision whose value to restore.
        #[arg(long, value_name = "N")]
        to: u64,
    },

    /// Find what breaks the store's layout (Redis: data keys no index lists, index entries
    /// without data); with --fix, repair it. With --acls (ZooKeeper with credentials), find the
    /// nodes others may change; with --fix-acls, give them this identity's ACL. Exit 6 if
    /// something was found and not fixed.
    #[command(after_help = "Prints one line per problem: `unindexed NS/CONFIG` (data no reader sees), `dangling \
                            NS/CONFIG`\n(an index entry without data) or `foreign KEY: WHY` (a key in confo's key space \
                            that confo cannot\nhave written: another program's, in a shared Redis; never touched). --fix \
                            deletes the unindexed data\nand drops the dangling entries, each checked again atomically; \
                            --key KEY (with --fix) also deletes\na foreign key the operator names. Files, ZooKeeper and \
                            etcd list their data itself: nothing to repair.\n\n--acls prints `open ZNODE ACL` for each node of confo's tree \
                            (root, namespaces, configurations)\nthat identities other than this one may change (as \
                            confo 0.1.6.2 made them: world-open); --fix-acls\ngives each the spec's ACL and prints \
                            `fixed ZNODE`, or `not-fixed ZNODE: WHY` (no ADMIN right).\n\nExamples:\n  \
                            confo -b redis://127.0.0.1:6379 repair\n  confo -b redis://127.0.0.1:6379 repair --fix\n  \
                            confo -b zk://alice:pw@127.0.0.1:2181 repair --acls\n  \
                            confo -b zk://alice:pw@127.0.0.1:2181 repair --fix-acls")]
    Repair {
        /// Repair what is found.
        #[arg(long, conflicts_with_all = ["acls", "fix_acls"])]
        fix: bool,
        /// With --fix: also delete this key found foreign (repeatable).
        #[arg(long, value_name = "KEY", requires = "fix")]
        key: Vec<String>,
        /// Check ACLs instead (ZooKeeper): list the nodes others may change.
        #[arg(long)]
        acls: bool,
        /// Give the nodes others may change this identity's ACL (implies --acls).
        #[arg(long)]
        fix_acls: bool,
    },

    /// Schemas: a JSON Schema per namespace (and per configuration), checked before every write.
    #[command(subcommand)]
    Schema(SchemaCommand),

    /// Check what is stored against the schemas (whatever their mode): prints every violation
    /// and exits 6 if there is one.
    #[command(
        after_help = "Finds what was written without confo (a raw client, Python confo) or before the schema was \
                            set.\n\nExamples:\n  confo validate\n  confo validate sales billing --output json"
    )]
    Validate {
        /// The namespaces (all when none is given).
        namespaces: Vec<String>,
    },

    /// Every recorded change of a namespace (deleted configurations included), newest first.
    #[command(after_help = "TIME is 2026-11-28, 2026-11-28T09:30:00Z, or an age such as 2h, 7d (that long ago).\n\n\
                            Examples:\n  confo log sales\n  confo log sales --since 1d --actor alice")]
    Log {
        /// The namespace.
        namespace: String,
        /// Only changes since TIME.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only changes by this actor.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// At most this many (the newest).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },

    /// Named backends (profiles): list, add, remove, choose the default.
    #[command(subcommand)]
    Backend(BackendCommand),

    /// Keys for secrets: `keys new [ID]` adds a key to the keyring ($CONFO_KEYS, else
    /// ~/.config/confo/keys.toml; made with mode 0600; the first key is the primary one).
    #[command(subcommand)]
    Keys(KeysCommand),

    /// Set one secret field: encrypted before it leaves this process.
    #[command(subcommand)]
    Secret(SecretCommand),

    /// Secrets: where they are, and re-encrypting them under the primary key.
    #[command(subcommand)]
    Secrets(SecretsCommand),

    /// Print a shell completion script.
    #[command(after_help = "Example:\n  confo completions bash > /etc/bash_completion.d/confo")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Serve the HTTP API (/api/v1) and the web console (/console) over the backends given with
    /// -b (each a spec, a profile, or NAME=SPEC; default as for every command). Prints
    /// "listening on http://ADDRESS" once it accepts connections; SIGINT or SIGTERM stops it
    /// gracefully. Requests need a token (confo token add) unless --anonymous-read.
    #[command(after_help = "Examples:\n  confo token add admin --role admin,reveal\n  \
                            confo serve\n  confo serve --listen 127.0.0.1:8080 -b main=file:./Configurations -b prod\n  \
                            confo serve --listen 0.0.0.0:7443 --tls-cert cert.pem --tls-key key.pem")]
    Serve {
        /// The address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDRESS")]
        listen: String,
        /// The tokens file (default $CONFO_TOKENS, else ~/.config/confo/tokens.json).
        #[arg(long, value_name = "FILE")]
        tokens: Option<PathBuf>,
        /// Let requests without a token read (never write). Off unless given.
        #[arg(long)]
        anonymous_read: bool,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key).
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Connections served at once; more wait to be accepted.
        #[arg(long, default_value_t = 4096, value_name = "N")]
        max_connections: usize,
        /// The largest request body accepted, in bytes (413 beyond).
        #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
        max_body: usize,
        /// A host name clients reach the server by, beyond localhost, 127.0.0.1, [::1] and the
        /// listen address (repeatable); requests addressed to any other get 421 (DNS rebinding).
        #[arg(long = "allowed-host", value_name = "NAME")]
        allowed_hosts: Vec<String>,
        /// Event streams held open at once (default: a quarter of --max-connections, so that
        /// streams never take the connections ordinary requests need); also at most 16 per
        /// token and 4 per anonymous address. Beyond: 429 with Retry-After.
        #[arg(long, value_name = "N")]
        max_streams: Option<usize>,
        /// Event streams one token may hold open at once.
        #[arg(long, default_value_t = 16, value_name = "N")]
        streams_per_token: usize,
    },

    /// API tokens for `confo serve`: add (printed once, stored hashed), list, remove.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Make a token: prints it once (only its hash is kept) and records NAME as the actor of
    /// what it writes.
    #[command(after_help = "Examples:\n  confo token add ci --role read\n  \
                            confo token add deploy --role write --namespaces 'sales-*'\n  \
                            confo token add alice --role admin,reveal --tokens ./tokens.json")]
    Add {
        /// The token's name (who its writes are recorded as).
        name: String,
        /// Roles, comma-separated: read, write, admin (schemas, namespace deletion), reveal
        /// (secrets in the clear). Every role reads; admin writes.
        #[arg(long, value_name = "ROLE[,ROLE…]")]
        role: String,
        /// The namespaces it may touch (a glob).
        #[arg(long, default_value = "*", value_name = "GLOB")]
        namespaces: String,
        /// The backends (names given to serve) it may touch (a glob).
        #[arg(long, default_value = "*", value_name = "GLOB")]
        backends: String,
        /// The tokens file (default $CONFO_TOKENS, else ~/.config/confo/tokens.json).
        #[arg(long, value_name = "FILE")]
        tokens: Option<PathBuf>,
    },
    /// List the tokens: name, roles, namespaces, backends, created (never the token).
    Ls {
        /// The tokens file.
        #[arg(long, value_name = "FILE")]
        tokens: Option<PathBuf>,
    },
    /// Remove a token; a server using the file refuses it within a second.
    Rm {
        /// The token's name.
        name: String,
        /// The tokens file.
        #[arg(long, value_name = "FILE")]
        tokens: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum NsCommand {
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
pub(crate) enum BackendCommand {
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
        /// The keyring this profile's secrets use (instead of $CONFO_KEYS or the default).
        #[arg(long, value_name = "PATH")]
        keys: Option<String>,
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

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Add a key (from the OS random source) to the keyring in use; prints its id.
    New {
        /// The key's id (letters, digits, . _ -); default k1, k2, ….
        id: Option<String>,
    },
    /// List the key ids; the primary one is marked with *.
    Ls,
    /// Make a key the primary one (new secrets, and `secrets rotate`, use it).
    Primary {
        /// The key's id.
        id: String,
    },
    /// Remove a key (not the primary one): what it sealed can no longer be opened, so run
    /// `confo secrets rotate` first.
    Rm {
        /// The key's id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum SecretCommand {
    /// Set FIELD of NS/CONFIG to a secret read from stdin (a no-echo prompt on a terminal),
    /// never from the command line. JSON when it parses, else a string, as in `set`.
    #[command(after_help = "Examples:\n  confo secret set sales/database password\n  \
                            printf %s \"$DB_PASSWORD\" | confo secret set sales/database password")]
    Set {
        /// NS/CONFIG.
        target: String,
        /// The field.
        field: String,
    },
    /// Turn a secret back into a plain value, on purpose: opened with the keyring and stored
    /// in the clear (every other write keeps a sealed field sealed). FIELD is a field name or
    /// a JSON pointer (`/db/password`).
    #[command(after_help = "Examples:\n  confo secret unset sales/database password\n  \
                            confo secret unset sales/database /replicas/0/password")]
    Unset {
        /// NS/CONFIG.
        target: String,
        /// The field, or a JSON pointer.
        field: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum SecretsCommand {
    /// List where secrets are: NS/CONFIG, the field's JSON pointer, the key id.
    Ls {
        /// One namespace (default: all).
        namespace: Option<String>,
    },
    /// Re-encrypt every secret under the primary key (version-checked writes).
    Rotate {
        /// Namespaces (default: all).
        namespaces: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum SchemaCommand {
    /// Set the default schema of a namespace's configurations (or, with --config, one
    /// configuration's own), from a JSON, YAML or TOML file (- for JSON on stdin).
    #[command(
        after_help = "A JSON Schema, draft 2020-12 unless its $schema names draft 7. It must be self-contained:\n\
                            a $ref outside it is refused (confo never fetches schemas). The mode (default enforce, kept\n\
                            when not given): enforce refuses writes that break it (exit 2, nothing written), warn\n\
                            writes and warns, off keeps the schema without checking.\n\n\
                            Examples:\n  confo schema set sales database.schema.json\n  \
                            confo schema set sales flags.schema.json --config flags --mode warn"
    )]
    Set {
        /// The namespace.
        namespace: String,
        /// The schema's file.
        file: PathBuf,
        /// Only this configuration's schema (it replaces the default for it).
        #[arg(long, value_name = "NAME")]
        config: Option<String>,
        /// enforce, warn or off.
        #[arg(long, value_enum)]
        mode: Option<SchemaMode>,
    },
    /// Change only the mode of a namespace's schemas.
    #[command(after_help = "Examples:\n  confo schema mode sales warn")]
    Mode {
        /// The namespace.
        namespace: String,
        /// enforce, warn or off.
        #[arg(value_enum)]
        mode: SchemaMode,
    },
    /// Print a namespace's schemas: {"mode", "default", "configurations"}.
    Get {
        /// The namespace.
        namespace: String,
    },
    /// Remove a namespace's schemas (or, with --config, one configuration's).
    Rm {
        /// The namespace.
        namespace: String,
        /// Only this configuration's schema.
        #[arg(long, value_name = "NAME")]
        config: Option<String>,
    },
    /// The revisions of a namespace's schemas, newest first.
    History {
        /// The namespace.
        namespace: String,
    },
    /// Put a namespace's schemas back as they were at revision N (a new revision).
    Rollback {
        /// The namespace.
        namespace: String,
        /// The revision to restore.
        #[arg(long, value_name = "N")]
        to: u64,
    },
}

/// `--mode` of `schema set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemaMode {
    Enforce,
    Warn,
    Off,
}
