"""The vmwave lab: a local vCenter (govmomi's simulator) seeded from an estate file.

Used by the tests and by people for dry runs. It knows nothing of vmwave's
product code; vmwave talks to it exactly as to a real vCenter.
"""
