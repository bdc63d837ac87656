@echo off
rem 5) data_dst faceset extract: detect, align and save every face of the data_dst frames into
rem data_dst/aligned, with debug images in data_dst/aligned_debug. Asks face type, image size and
rem jpeg quality.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" extract ^
    --input-dir "%WORKSPACE%\data_dst" ^
    --output-dir "%WORKSPACE%\data_dst\aligned" ^
    --detector centerface ^
    --max-faces-from-image 0 ^
    --output-debug ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
