//! `backend ls|add|rm|use`: the profiles file.

use confo::BackendSpec;
use serde_json::Value;

use crate::args::{BackendCommand, Format};
use crate::exit::{Exit, Failure};
use crate::output;
use crate::profiles::{self, Profiles};

pub(crate) fn backend_command(command: BackendCommand, output: Option<Format>) -> Result<(), Failure> {
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
        BackendCommand::Add { name, spec, default, keys } => {
            if name.contains(':') || name.is_empty() {
                return Err(Failure::usage("a profile name must not be empty or contain ':'"));
            }
            // Check the spec's syntax before saving it (its ${...} are resolved only when used).
            profiles::with_placeholders(&spec).parse::<BackendSpec>()?;
            profiles.backends.insert(name.clone(), spec);
            match keys {
                Some(path) => drop(profiles.keys.insert(name.clone(), path)),
                None => drop(profiles.keys.remove(&name)),
            }
            // Adding a profile never changes where commands without --backend go.
            if default {
                profiles.default = Some(name);
            }
        }
        BackendCommand::Rm { name } => {
            profiles.keys.remove(&name);
            if profiles.backends.remove(&name).is_none() {
                return Err(Failure::new(Exit::NotFound, format!("backend profile {name:?} not found")));
            }
            if profiles.default.as_deref() == Some(name.as_str()) {
                profiles.default = None;
            }
        }
        BackendCommand::Use { name } => {
            if !profiles.backends.contains_key(&name) {
                return Err(Failure::new(Exit::NotFound, format!("backend profile {name:?} not found")));
            }
            profiles.default = Some(name);
        }
    }
    profiles.save()
}
