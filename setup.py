"""Install the vd_ros runtime package (not training/)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'vd_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    package_data={PACKAGE: ['fastdds_large_images.xml', 'sample_data/README.md',
                            'sample_data/*/*', 'sample_data/*/*/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE}/rviz', glob('rviz/*.rviz')),
    ],
    # Adaptation (training.adapt) runs from the source checkout; see tools/vd_ros_adapt.
    scripts=['tools/vd_ros_adapt'],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='vd_ros developers',
    maintainer_email='vd_ros@example.com',
    description='Vanishing Depth RGB-D perception node (segmentation, depth, pose features).',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            f'perception_node = {PACKAGE}.perception_node:main',
            f'vd_ros_replay = {PACKAGE}.replay:main',
        ],
    },
)
