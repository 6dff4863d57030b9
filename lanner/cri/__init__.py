# SPDX-License-Identifier: Apache-2.0
"""Generated CRI (runtime.v1) subset: regenerate with `make protos`."""
