"""The training engine: robust, domain-adversarial and hybrid-batch fine-tuning."""
