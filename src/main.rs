//! The `fudo` binary: parse the command line and hand over to the library.

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // candle's CPU backend otherwise starts a thread per core for every op, which makes a
        // batch-1 forward pass ~5x slower; shards are the unit of parallelism instead.
        // SAFETY: nothing else runs yet (no runtime, no threads), so no one reads the
        // environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let cli = fudo::cli::Cli::parse();
    if matches!(cli.command, fudo::cli::Command::Ctl(_)) {
        // Like any Unix tool, the console ends quietly when the reader of its output goes away
        // (`fudo ctl cluster | head`) instead of panicking in `println!` (Rust ignores SIGPIPE
        // by default; servers keep that, so a closed socket is an error, not a death).
        // SAFETY: restoring a signal's default disposition before any thread exists.
        let _ = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            )
        };
    }
    fudo::cli::run(cli)
}
