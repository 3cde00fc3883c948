//! `stream-cli`: topics, produce, consume and group offsets from the command line.

fn main() {
    eprintln!("stream-cli: not implemented yet");
    std::process::exit(1);
}
