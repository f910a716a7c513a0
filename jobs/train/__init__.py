"""Fine-tuning on a committed output with Ray Train (`raybatch train`)."""
