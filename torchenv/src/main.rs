//! `torchenv`: starts a program that links libtorch on a libtorch it finds (see the
//! library's documentation for the order), or says which it found and which it needs.
//!
//!   torchenv [--libtorch DIR] show                 # what it finds, and what it would use
//!   torchenv [--libtorch DIR] exec PROGRAM [ARG...] # run PROGRAM on it
//!
//! Copied under another name, such as `bin/worker` in the GPU kit, it runs
//! `../libexec/<that name>` beside it with all its arguments: the kit's `worker` is used
//! exactly as the worker itself.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use torchenv::{candidates, choose, environment, Libtorch, BUILT_FOR};

const USAGE: &str = "usage: torchenv [--libtorch DIR] show | exec PROGRAM [ARG...]";

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = PathBuf::from(args.next().unwrap_or_default());
    let name = argv0
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = if name == "torchenv" || name.is_empty() {
        direct(args.collect())
    } else {
        as_program(&name, args.collect())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::from(2)
        }
    }
}

/// Invoked as `torchenv`.
fn direct(mut args: Vec<std::ffi::OsString>) -> Result<(), String> {
    let mut setting = None;
    if args.first().is_some_and(|a| a == "--libtorch") {
        let dir = args.get(1).ok_or(USAGE)?;
        setting = Some(PathBuf::from(dir));
        args.drain(..2);
    }
    match args.first().and_then(|a| a.to_str()) {
        Some("show") => {
            let found = candidates(setting, Path::new("python3"));
            println!("built against libtorch {BUILT_FOR}; looked at:");
            for c in &found {
                println!("  {c}");
            }
            let lib = choose(found, BUILT_FOR).map_err(|e| e.to_string())?;
            println!("uses: {} ({})", lib.dir.display(), lib.source);
            Ok(())
        }
        Some("exec") if args.len() >= 2 => run(setting, &args[1], &args[2..]),
        _ => Err(USAGE.into()),
    }
}

/// Invoked under another name: runs `../libexec/<name>` beside this program.
fn as_program(name: &str, args: Vec<std::ffi::OsString>) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let bin = exe.parent().unwrap_or(Path::new("."));
    let program = bin.join("../libexec").join(name);
    if !program.is_file() {
        return Err(format!(
            "{} is missing: this launcher runs the program of the same name in ../libexec",
            program.display()
        ));
    }
    run(None, program.as_os_str(), &args)
}

/// Replaces this process with `program` on the libtorch found.
fn run(
    setting: Option<PathBuf>,
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
) -> Result<(), String> {
    let lib: Libtorch =
        choose(candidates(setting, Path::new("python3")), BUILT_FOR).map_err(|e| e.to_string())?;
    let env = environment(&lib).map_err(|e| e.to_string())?;
    let err = Command::new(program).args(args).envs(env).exec();
    Err(format!(
        "cannot run {}: {err}",
        Path::new(program).display()
    ))
}
