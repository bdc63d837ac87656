@echo off
rem 2) extract images from video data_src: write the frames of workspace/data_src.* (any video
rem extension) into workspace/data_src. Asks the frame rate (0 = every frame) and the image format.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" videoed extract-video ^
    --input-file "%WORKSPACE%\data_src.*" ^
    --output-dir "%WORKSPACE%\data_src" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
