//! Work spread over the machine's cores: reading and decoding a namespace.

/// `map` applied to every item, in order, on as many threads as the machine has but with at
/// least `per_thread` items each (one thread: the caller's, no thread started). Each thread
/// has a state, starting from `S::default()`; the first thread's is returned. A panic in `map`
/// is raised here. (The file engine reads a namespace's files with it, the network engines
/// parse with it through `parse_all_with`, and the session makes a namespace compact.)
pub(crate) fn map_on_threads<T, R, S, F>(items: Vec<T>, per_thread: usize, map: F) -> (Vec<R>, S)
where
    T: Send,
    R: Send,
    S: Default + Send,
    F: Fn(&mut S, T) -> R + Sync,
{
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(items.len().div_ceil(per_thread.max(1))).max(1);
    if threads == 1 {
        let mut state = S::default();
        let mapped = items.into_iter().map(|item| map(&mut state, item)).collect();
        return (mapped, state);
    }
    let per = items.len().div_ceil(threads);
    let mut parts = Vec::with_capacity(threads);
    let mut rest = items;
    while rest.len() > per {
        let tail = rest.split_off(per);
        parts.push(std::mem::replace(&mut rest, tail));
    }
    parts.push(rest);
    let map = &map;
    let results: Vec<(Vec<R>, S)> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    let mut state = S::default();
                    let mapped: Vec<R> = part.into_iter().map(|item| map(&mut state, item)).collect();
                    (mapped, state)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    let mut first_state = None;
    let mut all = Vec::with_capacity(results.iter().map(|(mapped, _)| mapped.len()).sum());
    for (mapped, state) in results {
        all.extend(mapped);
        first_state.get_or_insert(state);
    }
    (all, first_state.unwrap_or_default())
}
