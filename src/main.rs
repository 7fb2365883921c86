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
    fudo::cli::run(fudo::cli::Cli::parse())
}
