use clap::Parser as _;

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    let cli = yunying::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(yunying::cli::run(cli))
}

// glibc malloc showed up at ~13% of server CPU under load; mimalloc is the usual cure.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process unless `MIMALLOC_ALLOW_THP` is set (then
/// mimalloc's own setting decides). mimalloc asks for huge pages on its arenas, and the kernel
/// zeroes 2 MiB at the first touch of each: that was most of the server's CPU in the first 100 ms
/// of a burst after start, and 18 MiB of its idle memory. Throughput under load is the same
/// either way (docs/benchmarks.md §6).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // Best effort: a kernel without the flag changes nothing else.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}
