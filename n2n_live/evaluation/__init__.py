"""How quality is measured, beside the live pipeline: converged references (`references`), flicker (`stability`),
the per-frame metrics file (`metrics_log`) and its plots (`plots`)."""
