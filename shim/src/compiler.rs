//! runwasi's precompile hook: for an image whose component is a wasm layer, the shim
//! compiles it once and containerd keeps the compiled form in its content store (a
//! label on the image names it, with [`Compiler::cache_key`]), so later containers of
//! the image start without compiling. Images that carry the component as a file use
//! the node's compile cache instead (`workload.rs`).

use std::hash::Hash;

use anyhow::Result;
use containerd_shim_wasm::sandbox::context::WasmLayer;
use containerd_shim_wasm::shim::Compiler;
use sockbox_host::Runner;

/// The media type of a component layer, the one kind of layer sockbox runs.
const COMPONENT_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

/// Compiles components' layers with the engine the shim's containers run them on.
pub struct SockboxCompiler {
    runner: Runner,
}

impl SockboxCompiler {
    pub fn new() -> Result<Self> {
        Ok(Self {
            runner: Runner::new()?,
        })
    }
}

impl Compiler for SockboxCompiler {
    /// The shim's version and the engine's compatibility key: a new shim or a new
    /// engine setting compiles again.
    fn cache_key(&self) -> impl Hash {
        (env!("CARGO_PKG_VERSION"), self.runner.precompile_key())
    }

    async fn compile(&self, layers: &[WasmLayer]) -> Result<Vec<Option<Vec<u8>>>> {
        layers
            .iter()
            .map(|layer| {
                if layer.precompiled || layer.config.media_type().to_string() != COMPONENT_LAYER {
                    return Ok(None);
                }
                self.runner.precompile(&layer.layer).map(Some)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the hook compiles, a container's run loads: the built-in guest, compiled
    /// as a component layer, is a command again; other layers are left alone.
    #[test]
    fn a_component_layer_compiled_is_loaded_by_the_run() {
        let compiler = SockboxCompiler::new().unwrap();
        let layer = |media_type: &str, bytes: &[u8]| WasmLayer {
            config: serde_json::from_value(serde_json::json!({
                "mediaType": media_type,
                "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "size": bytes.len(),
            }))
            .unwrap(),
            precompiled: false,
            layer: bytes.to_vec(),
        };
        let layers = [
            layer(COMPONENT_LAYER, sockbox_host::GUEST_WASM),
            layer("application/toml", b"key = 1"),
        ];
        let compiled = block_on(compiler.compile(&layers)).unwrap();
        assert!(compiled[1].is_none());
        let bytes = compiled[0].as_ref().unwrap();
        let runner = Runner::new().unwrap();
        assert_eq!(runner.precompile_key(), compiler.runner.precompile_key());
        #[expect(unsafe_code, reason = "loading what the hook just compiled")]
        // SAFETY: `bytes` are `precompile`'s output, just made, in this process.
        let component = unsafe { runner.load_precompiled(bytes) }.unwrap();
        assert!(runner.prepare(&component).unwrap().is_command());
        // Other bytes are refused, not run.
        #[expect(unsafe_code, reason = "checking that wasmtime refuses other bytes")]
        // SAFETY: wasmtime checks the header before anything runs; these have none.
        let refused = unsafe { runner.load_precompiled(b"not compiled") };
        assert!(refused.is_err());
    }

    /// Runs a future to its end on a current-thread runtime.
    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
