"""Fitting: the physics of spots on a camera, shared by the classical localiser, the PSF
calibration and the refinement after the network. mle.py: single-spot fits and the one Fisher
scoring loop with the camera's noise; joint.py: groups of overlapping spots fitted together;
groups.py: which detections overlap, and their pixels; background_test.py: a spot, or background
only?; refine.py: the stage after the network."""
