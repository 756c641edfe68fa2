"""clabgen: tunnel-lab intent -> containerlab/VyOS/Linux lab -> deploy, verify, destroy."""

__version__ = "0.2.0"
