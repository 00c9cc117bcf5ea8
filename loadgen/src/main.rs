//! `hotline-loadgen`: arrives with the load generator issue.

fn main() {
    eprintln!(
        "hotline-loadgen: not built yet (wire protocol version {})",
        hotline_wire::PROTOCOL_VERSION
    );
    std::process::exit(2);
}
