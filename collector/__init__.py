# SPDX-License-Identifier: Apache-2.0
"""Lanner collector: eBPF syscall events (bpf/) decoded into the event model and pushed to the enricher."""
