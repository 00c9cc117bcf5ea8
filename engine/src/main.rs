fn main() {
    eprintln!(
        "hotline: the server arrives with the engine issue ({})",
        hotline_engine::storage_version()
    );
    std::process::exit(2);
}
