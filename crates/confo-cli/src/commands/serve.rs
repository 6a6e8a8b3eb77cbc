//! `serve` (the HTTP API and console, `confo-serve`) and `token add|ls|rm` (its tokens file).

use confo::BackendSpec;
use confo_serve::auth::{default_tokens_path, Role, TokenFile};
use serde_json::json;

use crate::args::{Command, Format, TokenCommand};
use crate::exit::{Exit, Failure};
use crate::output;

/// The backends to serve: each `-b` a profile (named after it), `NAME=SPEC`, or a spec
/// (named after its kind: `file`, `redis`, …, numbered when repeated); none: the default one,
/// named `default`.
fn named_backends(given: &[String]) -> Result<Vec<(String, BackendSpec)>, Failure> {
    if given.is_empty() {
        return Ok(vec![("default".to_owned(), crate::resolve_spec(None)?)]);
    }
    let mut out: Vec<(String, BackendSpec)> = Vec::new();
    for text in given {
        let named = text.split_once('=').filter(|(name, _)| !name.is_empty() && !name.contains([':', '/', '?']));
        let (name, spec) = match named {
            Some((name, spec)) => (name.to_owned(), crate::resolve_spec(Some(spec))?),
            None if !text.contains(':') => (text.clone(), crate::resolve_spec(Some(text))?),
            None => {
                let spec = crate::resolve_spec(Some(text))?;
                let kind = text.split(':').next().unwrap_or("backend").split('+').next().unwrap_or("backend");
                (kind.to_owned(), spec)
            }
        };
        let mut unique = name.clone();
        let mut n = 2;
        while out.iter().any(|(taken, _)| *taken == unique) {
            unique = format!("{name}-{n}");
            n += 1;
        }
        out.push((unique, spec));
    }
    Ok(out)
}

pub(crate) fn serve(command: Command, backends: &[String]) -> Result<(), Failure> {
    let Command::Serve {
        listen,
        tokens,
        anonymous_read,
        tls_cert,
        tls_key,
        max_connections,
        max_body,
        allowed_hosts,
        max_streams,
        streams_per_token,
    } = command
    else {
        return Ok(());
    };
    if max_connections == 0 {
        return Err(Failure::usage("--max-connections must be at least 1"));
    }
    let max_streams = max_streams.unwrap_or((max_connections / 4).max(1));
    if max_streams == 0 || (max_streams >= max_connections && max_connections > 1) {
        return Err(Failure::usage(format!(
            "--max-streams must be at least 1 and less than --max-connections ({max_connections}), so that ordinary \
             requests keep connections"
        )));
    }
    if streams_per_token == 0 {
        return Err(Failure::usage("--streams-per-token must be at least 1"));
    }
    let streams = confo_serve::auth::StreamLimits {
        max: max_streams,
        per_token: streams_per_token,
        per_address: confo_serve::auth::STREAMS_PER_ADDRESS,
    };
    let mut hosts = Vec::new();
    for host in allowed_hosts {
        let name = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.contains(['/', '@', ' ']) || name.contains("://") {
            return Err(Failure::usage(format!("--allowed-host {host:?}: give a host name, without scheme or path")));
        }
        hosts.push(name);
    }
    let config = confo_serve::ServeConfig {
        backends: named_backends(backends)?,
        listen,
        tokens,
        tls: tls_cert.zip(tls_key),
        settings: confo_serve::Settings {
            anonymous_read,
            max_body,
            allowed_hosts: hosts,
            streams,
            ..Default::default()
        },
        limits: confo_serve::listen::Limits { max_connections, ..Default::default() },
    };
    confo_serve::run(config).map_err(|message| Failure::new(Exit::Unavailable, message))
}

pub(crate) fn token(command: TokenCommand, output: Option<Format>) -> Result<(), Failure> {
    let path_of = |given: Option<std::path::PathBuf>| given.unwrap_or_else(default_tokens_path);
    match command {
        TokenCommand::Add { name, role, namespaces, backends, tokens } => {
            let path = path_of(tokens);
            let roles = Role::parse_list(&role).map_err(Failure::usage)?;
            let mut file = TokenFile::load(&path).map_err(|e| Failure::new(Exit::Error, e))?;
            let token = file.add(&name, roles, &namespaces, &backends).map_err(Failure::usage)?;
            file.save(&path).map_err(|e| Failure::new(Exit::Error, e))?;
            outln!("{token}");
            errln!("token {name:?} added to {}; it is shown only this once", path.display());
        }
        TokenCommand::Ls { tokens } => {
            let file = TokenFile::load(&path_of(tokens)).map_err(|e| Failure::new(Exit::Error, e))?;
            if let Some(format) = output.filter(|f| *f != Format::Table) {
                let list: Vec<_> = file
                    .tokens
                    .iter()
                    .map(|t| {
                        json!({"name": t.name, "roles": t.roles, "namespaces": t.namespaces,
                               "backends": t.backends, "created": t.created})
                    })
                    .collect();
                output::value(&json!({ "tokens": list }), format)?;
            } else {
                for t in &file.tokens {
                    let roles: Vec<&str> = t.roles.iter().map(|r| r.as_str()).collect();
                    outln!(
                        "{}\t{}\tnamespaces={}\tbackends={}\t{}",
                        output::safe(&t.name, output::Stream::Out),
                        roles.join(","),
                        t.namespaces,
                        t.backends,
                        t.created
                    );
                }
            }
        }
        TokenCommand::Rm { name, tokens } => {
            let path = path_of(tokens);
            let mut file = TokenFile::load(&path).map_err(|e| Failure::new(Exit::Error, e))?;
            if !file.remove(&name) {
                return Err(Failure::new(Exit::NotFound, format!("no token named {name:?} in {}", path.display())));
            }
            file.save(&path).map_err(|e| Failure::new(Exit::Error, e))?;
        }
    }
    Ok(())
}
