//! `stream-server`: the STRP broker.

fn main() {
    eprintln!("stream-server: not implemented yet");
    std::process::exit(1);
}
