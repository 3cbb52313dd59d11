//! Link flags of the cdylib.
//!
//! `-z nodelete`: the dynamic loader never unmaps the library, even when the JVM unloads the
//! class loader that loaded it (a Flink job restarted with a new user class loader). The
//! library starts threads (the client's tokio runtime, JVM-attached callbacks) that may still
//! be running or parked at that point; unmapping their code under them would crash the JVM.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
