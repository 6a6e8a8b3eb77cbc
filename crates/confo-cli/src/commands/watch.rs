//! `watch NS[/CONFIG]`: one JSON line per change until interrupted, or until the watcher meets
//! a failure it cannot recover from (then its exit code).

use confo::{BackendSpec, WatchOptions};

use crate::exit::Failure;
use crate::output;

/// Watches a namespace, or one configuration of it.
pub(crate) fn watch(spec: &BackendSpec, target: &str) -> Result<(), Failure> {
    let (namespace, config) = match target.split_once('/') {
        Some((ns, cfg)) if !ns.is_empty() && !cfg.is_empty() => (ns, Some(cfg)),
        Some(_) => return Err(Failure::usage(format!("expected NS or NS/CONFIG, got {target:?}"))),
        None => (target, None),
    };
    let watcher = crate::open_store(spec)?.watch(namespace, config, WatchOptions::default())?;
    errln!("confo: watching {target} (Ctrl-C to stop)");
    for event in watcher {
        outln!("{}", output::escape_c1(event?.to_json().to_string()));
        // A closed pipe (confo watch | head -1) ends the command quietly.
        if output::stdout_closed() {
            return Ok(());
        }
    }
    Ok(())
}
