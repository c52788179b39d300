"""Fitting: the physics of spots on a camera, shared by the classical localiser, the PSF
calibration and the refinement after the network. scoring.py: the one fitting loop (compiled),
with the camera's noise; mle.py: single spots; joint.py: groups of overlapping spots fitted together;
groups.py: which detections overlap, and their pixels; background_test.py: a spot, or background
only?; psf_sigma.py: the PSF sigma of a 2-D run, from its frames; refine.py: the stage after the
network."""
