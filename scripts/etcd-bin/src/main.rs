//! Prints the path of the etcd binary bundled by `etcd-bin-vendored`, for `scripts/stack`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match etcd_bin_vendored::etcd_bin_path() {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error} (scripts/etcd-bin enables only the linux-x86_64 binary)");
            ExitCode::FAILURE
        }
    }
}
