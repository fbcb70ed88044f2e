"""voxray.train"""
