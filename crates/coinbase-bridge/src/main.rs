//! `coinbase-bridge`: Coinbase Exchange FIX to stream-server topics.

fn main() {
    eprintln!("coinbase-bridge: not implemented yet");
    std::process::exit(1);
}
