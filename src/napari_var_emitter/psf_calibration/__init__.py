"""PSF calibration from bead z-stacks: find and fit beads, fit the astigmatic defocus curves."""
