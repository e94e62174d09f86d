//! The `shardis` binary: read the configuration, start the shards.

/// mimalloc, counting the bytes in use for INFO's `used_memory` (see `shardis::memory`).
#[global_allocator]
static GLOBAL: shardis::memory::CountingAlloc = shardis::memory::CountingAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match shardis::config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("\n*** FATAL CONFIG FILE ERROR ***\n{e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = shardis::server::run(shardis::config::ConfigHandle::new(config)) {
        shardis::log::log(&e);
        std::process::exit(1);
    }
}
