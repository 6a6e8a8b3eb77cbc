//! Links the extension with the system's `libgcc_s.so.1`, the unwinder glibc itself uses.
//!
//! Built with maturin's zig linker (`maturin build --zig`, for a manylinux2014 wheel), the
//! module would otherwise carry LLVM's libunwind inside it: `-lgcc_s` is replaced by zig's own
//! unwinder. glibc's `pthread_exit` unwinds a thread with `libgcc_s`, and Python 3.8 to 3.13
//! call it on a daemon thread that asks for the GIL while the interpreter exits: the unwind then
//! went through confo's frames with two unwinders mixed and crashed the process at exit (SIGSEGV;
//! `tests/test_fork_and_exit.py`). With `libgcc_s.so.1` linked (a library every manylinux
//! policy allows) there is one unwinder again. A no-op for an ordinary build, which links it
//! anyway.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let (host, target) = (std::env::var("HOST").unwrap_or_default(), std::env::var("TARGET").unwrap_or_default());
    if target_os != "linux" || target_env != "gnu" || host != target {
        return;
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let candidates = [
        format!("/lib/{arch}-linux-gnu/libgcc_s.so.1"),
        format!("/usr/lib/{arch}-linux-gnu/libgcc_s.so.1"),
        "/lib64/libgcc_s.so.1".to_owned(),
        "/usr/lib64/libgcc_s.so.1".to_owned(),
        "/lib/libgcc_s.so.1".to_owned(),
    ];
    match candidates.iter().find(|path| Path::new(path).exists()) {
        Some(path) => println!("cargo:rustc-link-arg-cdylib={path}"),
        None => println!(
            "cargo:warning=libgcc_s.so.1 not found: a wheel built with --zig would crash at exit with daemon threads in a call"
        ),
    }
}
