//! Exit codes, one `match` on the library's error kinds, and the failure a command reports.
//! The codes are a contract (scripts test them): 0 ok, 1 other, 2 usage, 3 not found, 4
//! conflict, 5 unavailable, unauthorized or insecure, 6 invalid (`validate` found
//! configurations that break their schema, `repair` found problems it did not fix).

use std::process::ExitCode;

use confo::model::error::Missing;
use confo::{Error, ErrorKind};

/// How `confo` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// Any other error (corrupt data, I/O, a non-empty namespace without --force, an editor
    /// that failed).
    Error = 1,
    /// Bad arguments, names, JSON, documents, backend spec, profile or output format.
    Usage = 2,
    /// A store folder, namespace, configuration, field, profile or input file that is not there.
    NotFound = 3,
    /// Someone else changed the configuration since it was read.
    Conflict = 4,
    /// The store is unavailable, refused access, or holds something confo does not trust.
    Unavailable = 5,
    /// `validate` found stored configurations that break their schema, or `repair` found
    /// layout problems it did not fix.
    Invalid = 6,
}

impl Exit {
    /// The exit code for a kind of library error: the one place errors meet exit codes.
    pub fn of(kind: ErrorKind) -> Exit {
        match kind {
            ErrorKind::NotFound => Exit::NotFound,
            ErrorKind::InvalidName | ErrorKind::InvalidSpec | ErrorKind::InvalidValue | ErrorKind::SchemaViolation => {
                Exit::Usage
            }
            ErrorKind::Conflict => Exit::Conflict,
            ErrorKind::Unavailable | ErrorKind::Unauthorized | ErrorKind::Insecure => Exit::Unavailable,
            _ => Exit::Error,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// A failure to report: the message, an optional hint, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub(crate) code: Exit,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    /// Lines printed after the message (each schema violation).
    pub(crate) details: Vec<String>,
}

impl Failure {
    pub(crate) fn new(code: Exit, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), hint: None, details: Vec::new() }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, message)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        // A partial failure exits as its cause would (5 for a server that went away, 4 for a
        // conflict), and says what to do with the part left.
        let code = Exit::of(error.cause().kind());
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
        if let Error::SchemaViolation { violations } = error.cause() {
            let details = violations.iter().map(ToString::to_string).collect();
            let count = violations.len();
            let message = format!("{count} schema violation{}: nothing was written", if count == 1 { "" } else { "s" });
            let hint = Some("fix the values, or see the schema with: confo schema get NS".to_owned());
            return Failure { code, message, hint, details };
        }
        Failure { code, message: error.to_string(), hint, details: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        let codes =
            [Exit::Ok, Exit::Error, Exit::Usage, Exit::NotFound, Exit::Conflict, Exit::Unavailable, Exit::Invalid];
        assert_eq!(codes.map(|c| c as u8), [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(Exit::of(ErrorKind::SchemaViolation), Exit::Usage);
        assert_eq!(Exit::of(ErrorKind::Insecure), Exit::Unavailable);
        assert_eq!(Exit::of(ErrorKind::InvalidSpec), Exit::Usage);
        assert_eq!(Exit::of(ErrorKind::Corrupt), Exit::Error);
    }
}
