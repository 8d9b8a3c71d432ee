"""Simulation of HRTEM images: potentials, multislice, image formation, detector, backends."""
