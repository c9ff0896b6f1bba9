"""The live pipeline: one frame = render pair -> temporal histories -> trainer (background thread) and denoiser ->
display and metrics. `config` holds its one configuration, `loop.LiveLoop` drives it for the headless run, the
viewer and n2n-compare."""
