//! The pod sandbox's process for the CRI test's pause image: it does nothing until it
//! is killed (containerd stops a sandbox with SIGKILL). Built by the test with `rustc`,
//! statically linked, so that the image needs no other file.

fn main() {
    loop {
        std::thread::park();
    }
}
