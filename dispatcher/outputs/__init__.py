# SPDX-License-Identifier: Apache-2.0
"""Built-in outputs; each module registers itself with ``@register_output``."""
